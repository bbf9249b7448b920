"""Prefork's accept strategy under faults: a stuck worker must not stall new connections."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from workerproc import StartWorker, Worker, wait_until

pytestmark = pytest.mark.worker

CLIENTS = 16


def new_connection_rate(port: int, seconds: float) -> float:
    """Requests per second answered when every request opens a new connection (CLIENTS at once).

    A request that hangs on a stuck worker gives up after a second and is
    not counted, so the figure is what the pod still serves.
    """
    deadline = time.monotonic() + seconds
    answered = 0
    lock = threading.Lock()

    def client() -> None:
        nonlocal answered
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                conn.request("GET", "/pid", headers={"Connection": "close"})
                if conn.getresponse().status == 200:
                    with lock:
                        answered += 1
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answered / seconds


@contextlib.contextmanager
def idle_keep_alive_connections(port: int, count: int) -> Iterator[None]:
    """`count` keep-alive clients that asked once and stay connected, as browsers do."""
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(count)]
    try:
        for conn in connections:
            conn.request("GET", "/pid")
            conn.getresponse().read()
        yield
    finally:
        for conn in connections:
            conn.close()


@contextlib.contextmanager
def one_worker_stuck(worker: Worker, how: str) -> Iterator[None]:
    """One of two workers stops running its event loop: a long CPU-bound request, or SIGSTOP.

    A few idle keep-alive clients then connect: only the other worker can
    take them, so it has more open connections than the stuck one claims.
    """
    with contextlib.ExitStack() as stack:
        if how == "stopped":
            victim = min(worker.workers())
            os.kill(victim, signal.SIGSTOP)
            stack.callback(os.kill, victim, signal.SIGCONT)
        else:
            pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(max_workers=1))
            busy = pool.submit(worker.get, "/cpu?ms=6000", 30)
            stack.callback(lambda: busy.result(timeout=30))
            time.sleep(0.2)
        stack.enter_context(idle_keep_alive_connections(worker.port, 4))
        yield


@pytest.mark.parametrize("how", ["busy", "stopped"])
def test_one_stuck_worker_does_not_stall_new_connections(
    start_worker: StartWorker, how: str
) -> None:
    worker = start_worker("--mode", "prefork", "--workers", "2")
    assert wait_until(lambda: worker.workers_ready(2), 20)
    healthy = new_connection_rate(worker.port, 2.0)
    # The connections close; both workers' published counts fall back to zero.
    time.sleep(1.0)
    with one_worker_stuck(worker, how):
        # Measured from the moment the worker is stuck: no waiting for the
        # heartbeat timeout (30 s here) to remove it.
        stuck = new_connection_rate(worker.port, 3.0)
    assert healthy > 20, healthy
    # The goal is 45 % (issue 15); the bound is generous for a busy machine,
    # where yielding to the stuck worker gave a few per cent.
    assert stuck >= 0.25 * healthy, (stuck, healthy)
    assert worker.proc.poll() is None
