"""Prefork mode: the master, its workers, and what each signal does to them."""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import signal
import threading
import time
from collections import Counter

import pytest
from workerproc import StartWorker, Worker, children, metric_values, wait_until

pytestmark = pytest.mark.worker

MAX_REQUESTS_PER_CLIENT = 20_000


def load(port: int, stop: threading.Event, keep_alive: bool) -> tuple[int, list[str]]:
    """GETs /pid until told to stop (bounded in count): (answered, failures)."""
    answered, failures = 0, []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        if stop.is_set():
            break
        try:
            conn.request("GET", "/pid", headers={} if keep_alive else {"Connection": "close"})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                answered += 1
            else:
                failures.append(f"status {response.status}")
            if not keep_alive or response.getheader("Connection") == "close":
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            failures.append(repr(exc))
            conn.close()
    conn.close()
    return answered, failures


def pids_over_keep_alive_connections(port: int, count: int) -> Counter[str]:
    """Opens `count` keep-alive connections, asks each which process serves it."""
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(count)]
    served: Counter[str] = Counter()
    try:
        for conn in connections:
            conn.request("GET", "/pid")
            served[conn.getresponse().read().decode().strip()] += 1
    finally:
        for conn in connections:
            conn.close()
    return served


def test_workers_share_64_keep_alive_connections_evenly(start_worker: StartWorker) -> None:
    worker = start_worker("--mode", "prefork", "--workers", "2")
    assert wait_until(lambda: worker.workers_ready(2), 20)
    served = pids_over_keep_alive_connections(worker.port, 64)
    assert set(served) == {str(pid) for pid in worker.workers()}
    assert max(served.values()) <= 1.2 * min(served.values()), served

    # Whichever worker answers /metrics, it reports both, the other's figures
    # as of its last heartbeat (twice a second).
    def answered(page: str) -> float:
        requests = metric_values(page, "corescale_requests_total")
        return requests.get('{worker="0",code="200"}', 0) + requests.get(
            '{worker="1",code="200"}', 0
        )

    assert wait_until(lambda: answered(worker.get("/metrics")[1]) == 64, 5)
    for _ in range(4):
        page = worker.get("/metrics")[1]
        assert answered(page) == 64
        assert metric_values(page, "corescale_workers") == {"": 2}
        assert '{worker="master"}' in metric_values(page, "corescale_process_cpu_seconds_total")


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(
    start_worker: StartWorker,
) -> None:
    worker = start_worker("--mode", "prefork", "--workers", "2")
    assert wait_until(lambda: worker.workers_ready(2), 20)
    before = worker.workers()
    victim = min(before)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    statuses = Counter(worker.get("/pid")[0] for _ in range(50))
    assert statuses == Counter({200: 50})
    assert wait_until(lambda: len(worker.workers() - {victim}) == 2, 10, 0.01)
    replaced_after = time.monotonic() - killed_at
    replacement = (worker.workers() - before).pop()
    assert wait_until(
        lambda: any(worker.get("/pid")[1].strip() == str(replacement) for _ in range(20)), 10
    )
    assert f"worker pid {victim} (slot 0) died (signal SIGKILL)" in worker.log()
    assert metric_values(worker.get("/metrics")[1], "corescale_worker_restarts_total") == {"": 1}
    assert replaced_after < 10


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "new-connections"])
def test_sighup_replaces_every_worker_without_failing_a_request(
    start_worker: StartWorker, keep_alive: bool
) -> None:
    worker = start_worker("--mode", "prefork", "--workers", "2")
    assert wait_until(lambda: worker.workers_ready(2), 20)
    old = worker.workers()
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        clients = [pool.submit(load, worker.port, stop, keep_alive) for _ in range(6)]
        time.sleep(0.5)
        worker.signal(signal.SIGHUP)
        replaced = wait_until(lambda: "all workers replaced" in worker.log(), 30)
        assert wait_until(lambda: not old & worker.workers(), 30)
        time.sleep(0.5)
        stop.set()
        results = [client.result(timeout=60) for client in clients]
    assert replaced, worker.log()
    answered = sum(count for count, _ in results)
    failures = [failure for _, failed in results for failure in failed]
    assert failures == [], failures[:5]
    assert answered > 100
    assert len(worker.workers()) == 2 and not old & worker.workers()


def test_ttin_and_ttou_change_the_number_of_workers(start_worker: StartWorker) -> None:
    worker = start_worker("--mode", "prefork", "--workers", "2")

    def count(n: int) -> bool:
        page = worker.get("/metrics")[1]
        return len(worker.workers()) == n and metric_values(page, "corescale_workers") == {"": n}

    assert wait_until(lambda: count(2), 10)
    worker.signal(signal.SIGTTIN)
    assert wait_until(lambda: count(3), 10)
    worker.signal(signal.SIGTTOU)
    assert wait_until(lambda: count(2), 10)
    worker.signal(signal.SIGTTOU)
    assert wait_until(lambda: count(1), 10)
    worker.signal(signal.SIGTTOU)
    time.sleep(1)
    assert count(1), "never fewer than one worker"
    assert worker.get("/")[0] == 200


def test_a_worker_with_a_blocked_event_loop_is_killed_and_replaced(
    start_worker: StartWorker,
) -> None:
    worker = start_worker("--mode", "prefork", "--workers", "1", "--heartbeat-timeout", "1")
    stuck = int(worker.get("/pid")[1])
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        blocked = pool.submit(worker.get, "/cpu?ms=20000", 30)
        assert wait_until(lambda: "missed its heartbeat" in worker.log(), 15)
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            blocked.result(timeout=30)
    assert wait_until(lambda: worker.get("/pid")[1].strip() not in ("", str(stuck)), 15)
    assert "Current thread" in worker.log() or "Thread 0x" in worker.log(), "faulthandler dump"


def test_sigterm_drains_the_workers_while_in_flight_requests_finish(
    start_worker: StartWorker,
) -> None:
    worker = start_worker(
        "--mode", "prefork", "--workers", "2", env={"CORESCALE_DRAIN_DELAY": "1.5"}
    )
    assert wait_until(lambda: worker.workers_ready(2), 20)
    workers = worker.workers()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(worker.get, "/io?ms=2500")
        time.sleep(0.3)
        worker.signal(signal.SIGTERM)
        assert wait_until(lambda: worker.get("/readyz") == (503, "draining\n"), 2, 0.01)
        assert worker.get("/")[0] == 200
        assert in_flight.result(timeout=20) == (200, "waited 2500 ms\n")
    assert worker.wait(30) == 0
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)


def test_workers_exit_when_the_master_dies(start_worker: StartWorker) -> None:
    worker = start_worker("--mode", "prefork", "--workers", "2")
    assert wait_until(lambda: worker.workers_ready(2), 20)
    workers = worker.workers()
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in workers), 15)


def test_a_worker_crash_loop_stops_the_master_with_exit_code_4(
    start_worker: StartWorker,
) -> None:
    worker = start_worker(
        "worker_test_apps:crashing_factory", "--mode", "prefork", "--workers", "2", wait=False
    )
    assert worker.wait(60) == 4
    assert "crash loop" in worker.log()


def _zombies_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] == "Z":
                found.append(int(entry))
    return found


@pytest.mark.parametrize("mode", ["single", "prefork"])
def test_as_pid_1_orphans_are_reaped(start_worker: StartWorker, mode: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("a PID namespace needs root")
    worker: Worker = start_worker(
        "worker_test_apps:orphan_factory",
        "--mode",
        mode,
        "--workers",
        "1",
        prefix=["unshare", "--pid", "--fork", "--kill-child"],
    )
    (pid_1,) = worker.workers()  # unshare's child: PID 1 in the new namespace
    for _ in range(5):
        assert worker.get("/orphan") == (200, "orphaned\n")
    time.sleep(1.0)  # the orphans' sleep 0.3 ends, then they must be reaped
    assert wait_until(lambda: _zombies_of(pid_1) == [], 5), _zombies_of(pid_1)
    assert worker.get("/")[0] == 200
    if mode == "single":
        # The init forks before aiohttp and the app are loaded: it is not a
        # second copy of the server in the pod's memory.
        (server,) = children(pid_1)
        assert _rss_kib(pid_1) < _rss_kib(server) / 2, (_rss_kib(pid_1), _rss_kib(server))


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")
