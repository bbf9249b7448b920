"""Single mode: one process serving the app, its probes, metrics and graceful stop."""

from __future__ import annotations

import concurrent.futures
import http.client
import selectors
import signal
import socket
from pathlib import Path

import pytest
from workerproc import StartWorker, get, metric_values, wait_until

pytestmark = pytest.mark.worker


def test_serves_the_demo_app_and_the_reserved_paths(start_worker: StartWorker) -> None:
    worker = start_worker("--mode", "single")
    assert worker.get("/") == (200, "Hello from corescale\n")
    assert worker.get("/pid") == (200, f"{worker.pid}\n")
    status, body = worker.get("/cpu?ms=5")
    assert status == 200 and body.startswith("burned 5 ms")
    assert worker.get("/io?ms=5") == (200, "waited 5 ms\n")
    assert worker.get("/cpu?ms=junk")[0] == 400
    assert worker.get("/nowhere")[0] == 404
    assert worker.get("/healthz") == (200, "ok\n")
    assert worker.get("/readyz") == (200, "ready\n")

    status, page = worker.get("/metrics")
    assert status == 200
    requests = metric_values(page, "corescale_requests_total")
    assert requests['{worker="0",code="200"}'] == 4
    assert requests['{worker="0",code="400"}'] == 1
    assert requests['{worker="0",code="404"}'] == 1
    durations = metric_values(page, "corescale_request_duration_seconds_count")
    assert durations == {'{worker="0"}': 6}
    assert metric_values(page, "corescale_workers") == {"": 1}
    assert metric_values(page, "corescale_process_cpu_seconds_total")['{worker="0"}'] > 0
    assert "mode=single workers=1" in worker.log()
    assert worker.workers() == set(), "single mode forks no workers"


def test_a_single_process_stays_lean(start_worker: StartWorker) -> None:
    """An idle one-CPU worker loads no C++ runtime (frozenlist's extension; docs/worker.md)."""
    # Started without the variable, even when this test process has it from
    # importing corescale.worker: the worker must set it for itself.
    worker = start_worker("--mode", "single", prefix=["env", "-u", "FROZENLIST_NO_EXTENSIONS"])
    assert worker.ready()
    maps = Path(f"/proc/{worker.pid}/maps").read_text()
    assert "libstdc++" not in maps
    environ = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith(b"FROZENLIST_NO_EXTENSIONS=")]


def test_readyz_fails_at_once_on_sigterm_while_in_flight_requests_finish(
    start_worker: StartWorker,
) -> None:
    worker = start_worker("--mode", "single", env={"CORESCALE_DRAIN_DELAY": "2"})
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(worker.get, "/io?ms=2500")
        assert wait_until(
            lambda: 'corescale_requests_in_flight{worker="0"} 1' in worker.get("/metrics")[1], 10
        )
        worker.signal(signal.SIGTERM)
        assert wait_until(lambda: worker.get("/readyz") == (503, "draining\n"), 2, 0.01)

        # Still serving during the drain delay, but telling keep-alive clients to go.
        conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=5)
        conn.request("GET", "/pid")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Connection") == "close"
        conn.close()

        assert in_flight.result(timeout=20) == (200, "waited 2500 ms\n")
    assert worker.wait(30) == 0
    with pytest.raises(ConnectionRefusedError):
        get(worker.port, "/")
    assert "draining" in worker.log() and "stopped" in worker.log()


def test_readyz_is_503_while_the_app_starts(start_worker: StartWorker) -> None:
    worker = start_worker(
        "worker_test_apps:slow_factory",
        "--mode",
        "single",
        env={"SLOW_FACTORY_SECONDS": "3"},
        wait=False,
    )
    assert wait_until(lambda: worker.get("/readyz") == (503, "starting\n"), 20, 0.02)
    assert worker.get("/healthz") == (200, "ok\n")
    assert worker.get("/")[0] == 503
    assert wait_until(worker.ready, 20)
    assert worker.get("/") == (200, "Hello from corescale\n")


def test_sigquit_stops_at_once_without_waiting_for_requests(start_worker: StartWorker) -> None:
    worker = start_worker("--mode", "single", env={"CORESCALE_SHUTDOWN_TIMEOUT": "30"})
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(worker.get, "/io?ms=20000")
        assert wait_until(lambda: 'in_flight{worker="0"} 1' in worker.get("/metrics")[1], 10)
        worker.signal(signal.SIGQUIT)
        assert worker.wait(10) == 0
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            in_flight.result(timeout=10)


@pytest.mark.parametrize("flag", [[], ["--access-log"]])
def test_access_log_is_off_unless_asked_for(start_worker: StartWorker, flag: list[str]) -> None:
    worker = start_worker("--mode", "single", *flag)
    assert worker.get("/pid")[0] == 200
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert ('"GET /pid HTTP/1.1" 200' in worker.log()) == bool(flag)


def test_prefork_only_signals_do_not_kill_a_single_process(start_worker: StartWorker) -> None:
    worker = start_worker("--mode", "single")
    for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        worker.signal(signum)
    assert wait_until(lambda: worker.log().count("ignored in single mode") == 3, 10)
    assert worker.get("/") == (200, "Hello from corescale\n")
    assert worker.proc.poll() is None


def test_a_busy_loop_accepts_a_burst_of_new_connections_in_one_turn(
    start_worker: StartWorker,
) -> None:
    """Queued connections are taken together, not one per turn of a busy loop (issue 15, 7).

    uvloop's own accept takes one connection per turn of the event loop; with
    CPU-bound requests each turn is long, and the last of a burst waited for
    dozens of them. Here one keep-alive client keeps the loop busy with
    pipelined `/cpu?ms=50` while 40 new connections wait in the kernel's
    queue (the worker is stopped while they connect): all 40 must be answered
    before the busy client gets its fifth answer (one per turn would answer
    about one new connection per busy request).
    """
    worker = start_worker("--mode", "single")
    busy = socket.create_connection(("127.0.0.1", worker.port))
    busy.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
    assert b"200 OK" in busy.recv(4096)  # accepted and served before the stop
    worker.signal(signal.SIGSTOP)
    try:
        busy.sendall(b"GET /cpu?ms=50 HTTP/1.1\r\nHost: t\r\n\r\n" * 10)
        burst = [socket.create_connection(("127.0.0.1", worker.port)) for _ in range(40)]
        for conn in burst:
            conn.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    finally:
        worker.signal(signal.SIGCONT)

    busy_answers_when_burst_done = None
    waiting = {conn.fileno(): conn for conn in burst}
    busy_seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(busy, selectors.EVENT_READ)
        for conn in burst:
            selector.register(conn, selectors.EVENT_READ)
        while waiting and busy_seen.count(b"burned 50 ms") < 10:
            for key, _ in selector.select(timeout=30):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                data = sock.recv(65536)
                if sock is busy:
                    busy_seen += data
                elif not data:
                    selector.unregister(sock)
                    del waiting[sock.fileno()]
                    sock.close()
        busy_answers_when_burst_done = busy_seen.count(b"burned 50 ms")
    busy.close()
    assert not waiting, f"{len(waiting)} of 40 new connections unanswered"
    assert busy_answers_when_burst_done < 5
