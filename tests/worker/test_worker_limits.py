"""The open-file limit: raised to the hard limit at start, so idle sockets cannot fill a worker."""

from __future__ import annotations

import contextlib
import resource
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from workerproc import StartWorker, wait_until

pytestmark = pytest.mark.worker

# Below the hard limit a worker gets here and above the usual default soft
# limit, 1,024: these connections would leave the worker no descriptor.
IDLE_CONNECTIONS = 1_500
LOW_LIMIT = ["prlimit", "--nofile=1024:4096", "--"]


def open_files_limit(pid: int) -> tuple[int, int]:
    """(soft, hard) 'Max open files' of a process, read from /proc/PID/limits."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-file limit in /proc/{pid}/limits")


@contextlib.contextmanager
def own_limit_at_least(count: int) -> Iterator[None]:
    """Lets this test process hold `count` sockets itself (restored afterwards)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < count:
        pytest.skip(f"this test needs {count} open files; the hard limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, count), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_single_raises_its_soft_limit_and_serves_past_1024_idle_connections(
    start_worker: StartWorker,
) -> None:
    worker = start_worker("--mode", "single", prefix=LOW_LIMIT)
    assert open_files_limit(worker.pid) == (4096, 4096)
    assert "open-file limit raised from 1024 to 4096" in worker.log()

    with own_limit_at_least(IDLE_CONNECTIONS + 100), contextlib.ExitStack() as stack:
        for _ in range(IDLE_CONNECTIONS):
            stack.enter_context(socket.create_connection(("127.0.0.1", worker.port)))
        # Every idle connection is accepted and held (none closed for want
        # of a descriptor), and the probe still gets its answer.
        assert wait_until(lambda: _socket_count(worker.pid) >= IDLE_CONNECTIONS, 10)
        assert worker.get("/healthz") == (200, "ok\n")
    assert "Too many open files" not in worker.log()


def test_prefork_workers_inherit_the_raised_limit(start_worker: StartWorker) -> None:
    worker = start_worker("--mode", "prefork", "--workers", "2", prefix=LOW_LIMIT)
    assert wait_until(lambda: worker.workers_ready(2), 20)
    assert open_files_limit(worker.pid) == (4096, 4096)
    for pid in worker.workers():
        assert open_files_limit(pid) == (4096, 4096)
    assert worker.log().count("open-file limit raised") == 1


def test_a_limit_already_at_the_hard_limit_is_left_alone(start_worker: StartWorker) -> None:
    worker = start_worker("--mode", "single", prefix=["prlimit", "--nofile=2048:2048", "--"])
    assert open_files_limit(worker.pid) == (2048, 2048)
    assert "open-file limit" not in worker.log()


def _socket_count(pid: int) -> int:
    """How many sockets a process has open, from its /proc/PID/fd links."""
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            if fd.readlink().name.startswith("socket:"):
                count += 1
    return count
