"""`--mode auto` and `--workers auto` follow the CPUs really granted, not the host's count."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from workerproc import StartWorker, metric_values, wait_until

from corescale.worker.cgroup import available_cpus

pytestmark = pytest.mark.worker

CPU_CGROUP = Path("/sys/fs/cgroup/cpu")


def workers_chosen(log: str) -> tuple[str, int]:
    line = next(line for line in log.splitlines() if "mode=" in line)
    mode = line.split("mode=", 1)[1].split()[0]
    workers = int(line.split("workers=", 1)[1].split()[0])
    return mode, workers


def test_one_cpu_of_affinity_gives_single_mode(start_worker: StartWorker) -> None:
    if not shutil.which("taskset"):
        pytest.skip("taskset is not installed")
    worker = start_worker(prefix=["taskset", "-c", "0"])
    assert workers_chosen(worker.log()) == ("single", 1)
    assert worker.workers() == set()
    assert metric_values(worker.get("/metrics")[1], "corescale_workers") == {"": 1}


def test_without_limits_auto_uses_every_granted_cpu(start_worker: StartWorker) -> None:
    cpus = available_cpus()
    worker = start_worker()
    if cpus == 1:
        assert workers_chosen(worker.log()) == ("single", 1)
        return
    assert workers_chosen(worker.log()) == ("prefork", cpus)
    assert wait_until(lambda: len(worker.workers()) == cpus, 10)


@contextlib.contextmanager
def cpu_quota_cgroup(cpus: float) -> Iterator[Path]:
    """A cgroup v1 child with a CFS quota of `cpus`, removed afterwards."""
    if not (CPU_CGROUP / "cpu.cfs_quota_us").exists() or os.geteuid() != 0:
        pytest.skip("needs root and a cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu")
    group = CPU_CGROUP / f"corescale-test-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text(str(int(cpus * 100000)))
        yield group
    finally:
        for _ in range(100):
            with contextlib.suppress(OSError):
                group.rmdir()
                break
            time.sleep(0.1)


@pytest.mark.parametrize(("quota", "expected"), [(1.0, ("single", 1)), (1.5, ("single", 1))])
def test_a_cpu_quota_below_two_cpus_gives_single_mode(
    start_worker: StartWorker, quota: float, expected: tuple[str, int]
) -> None:
    with cpu_quota_cgroup(quota) as group:
        worker = start_worker(
            prefix=["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh"]
        )
        assert workers_chosen(worker.log()) == expected
        assert worker.workers() == set()
        os.killpg(worker.pid, 9)
        worker.wait(10)


def test_a_two_cpu_quota_gives_two_workers(start_worker: StartWorker) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs at least two CPUs in the affinity mask")
    with cpu_quota_cgroup(2.0) as group:
        worker = start_worker(
            prefix=["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh"]
        )
        assert workers_chosen(worker.log()) == ("prefork", 2)
        os.killpg(worker.pid, 9)
        worker.wait(10)
