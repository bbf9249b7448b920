"""The worker under faults (issue 15): slow clients, signal fan-out, late connections, bad input."""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from test_worker_prefork import load
from workerproc import StartWorker, children, get, metric_values, wait_until

pytestmark = pytest.mark.worker


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed `sock` (EOF or reset), or None if it stayed open `within`."""
    started = time.monotonic()
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


@pytest.mark.parametrize("mode", ["single", "prefork"])
def test_idle_and_slow_connections_are_closed_after_their_timeouts(
    start_worker: StartWorker, mode: str
) -> None:
    worker = start_worker(
        "--mode", mode, "--workers", "1", "--header-timeout", "1", "--keep-alive-timeout", "3"
    )
    address = ("127.0.0.1", worker.port)
    silent = socket.create_connection(address)
    slow = socket.create_connection(address)
    slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    idle = socket.create_connection(address)
    idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(4096).startswith(b"HTTP/1.1 200")
    try:
        # The header timeout ends connections that never send a whole request head.
        for sock in (silent, slow):
            waited = closed_by_server(sock, within=10)
            assert waited is not None, "a connection without a request head stayed open"
        # An idle keep-alive connection gets the longer keep-alive timeout, then goes too.
        waited = closed_by_server(idle, within=10)
        assert waited is not None, "an idle keep-alive connection stayed open"
        assert waited > 1.5, "the keep-alive timeout (3 s), not the header timeout, applies"
    finally:
        for sock in (silent, slow, idle):
            sock.close()
    assert worker.get("/") == (200, "Hello from corescale\n")


def test_the_timeouts_have_defaults_in_the_settings_table() -> None:
    from corescale.worker.config import load_config  # noqa: PLC0415

    config = load_config([], env={})
    assert 0 < config.header_timeout < config.keep_alive_timeout < 3600


def test_sigterm_to_the_whole_process_group_drains_once(start_worker: StartWorker) -> None:
    worker = start_worker(
        "--mode",
        "prefork",
        "--workers",
        "2",
        env={"CORESCALE_DRAIN_DELAY": "2.5", "CORESCALE_SHUTDOWN_TIMEOUT": "10"},
    )
    assert wait_until(lambda: worker.workers_ready(2), 20)
    workers = worker.workers()
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        in_flight = pool.submit(worker.get, "/io?ms=3500", 30)
        clients = [
            pool.submit(load, worker.port, stop, keep_alive)
            for keep_alive in (True, True, False, False)
        ]
        time.sleep(0.5)
        os.killpg(worker.pid, signal.SIGTERM)  # systemd's KillMode=control-group
        assert wait_until(lambda: worker.get("/readyz") == (503, "draining\n"), 2, 0.01)
        time.sleep(1.5)  # well inside the 2.5 s drain delay
        stop.set()
        results = [client.result(timeout=60) for client in clients]
        assert in_flight.result(timeout=30) == (200, "waited 3500 ms\n")
    failures = [failure for _, failed in results for failure in failed]
    assert failures == [], failures[:5]
    assert sum(answered for answered, _ in results) > 50
    assert worker.wait(30) == 0
    log = worker.log()
    assert log.count("draining: serving") == len(workers), log
    # Each worker gets the group's SIGTERM and the master's relay; when both
    # arrive before its handler runs the kernel merges them into one, so the
    # second is noted at most once per worker, and never starts a second drain.
    assert log.count("SIGTERM again: already draining") <= len(workers), log
    assert "fast stop" not in log


@pytest.mark.parametrize("strategy", ["balanced", "shared", "reuseport"])
def test_late_connections_are_refused_once_no_prefork_worker_accepts(
    start_worker: StartWorker, strategy: str
) -> None:
    worker = start_worker(
        "--mode",
        "prefork",
        "--workers",
        "2",
        "--accept",
        strategy,
        env={"CORESCALE_DRAIN_DELAY": "0.5"},
    )
    assert wait_until(lambda: worker.workers_ready(2), 20)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(worker.get, "/io?ms=4000", 30)
        time.sleep(0.3)
        worker.signal(signal.SIGTERM)
        time.sleep(1.5)  # past the drain delay; the in-flight request keeps a worker alive
        assert worker.proc.poll() is None
        started = time.monotonic()
        with pytest.raises((ConnectionRefusedError, ConnectionResetError)):
            get(worker.port, "/", timeout=3)
        assert time.monotonic() - started < 2, "refused at once, not after a wait"
        assert in_flight.result(timeout=30) == (200, "waited 4000 ms\n")
    assert worker.wait(30) == 0


def test_malformed_requests_are_logged_once_per_kind_without_tracebacks(
    start_worker: StartWorker,
) -> None:
    worker = start_worker("--mode", "single")
    bad = [
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"\x16\x03\x01junk\r\n\r\n",
    ]
    for request in bad * 100:
        with socket.create_connection(("127.0.0.1", worker.port), timeout=5) as sock:
            sock.sendall(request)
            status_line = sock.recv(4096).split(b"\r\n", 1)[0]
            assert status_line.split(b" ")[1] == b"400", (request, status_line)
    assert worker.get("/") == (200, "Hello from corescale\n")
    log = worker.log()
    assert "Traceback" not in log
    lines = [line for line in log.splitlines() if "bad request" in line.lower()]
    assert 1 <= len(lines) <= 4, lines


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_reserved_paths_answer_only_get_and_head(start_worker: StartWorker, path: str) -> None:
    worker = start_worker("--mode", "single")
    for method in ("POST", "PUT", "DELETE", "TRACE", "OPTIONS", "PATCH"):
        conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=5)
        conn.request(method, path)
        response = conn.getresponse()
        assert response.status == 405, (method, path)
        assert response.getheader("Allow") == "GET, HEAD"
        assert b"corescale_" not in response.read()
        conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=5)
    conn.request("HEAD", path)
    assert conn.getresponse().status == 200
    conn.close()
    assert worker.get(path)[0] == 200


@pytest.mark.parametrize("mode", ["single", "prefork"])
def test_a_factory_that_calls_sys_exit_is_a_boot_failure_with_a_message(
    start_worker: StartWorker, mode: str
) -> None:
    worker = start_worker("worker_test_apps:exiting_factory", "--mode", mode, wait=False)
    assert worker.wait(30) == 3
    assert "the factory of APP 'worker_test_apps:exiting_factory' called sys.exit(1)" in (
        worker.log()
    )


def test_sigkill_of_a_single_worker_leaves_no_metrics_folder(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    worker = start_worker("--mode", "single", env={"TMPDIR": str(tmpdir)})
    assert worker.get("/metrics")[0] == 200
    worker.signal(signal.SIGKILL)
    worker.wait(10)
    assert list(tmpdir.iterdir()) == []
    assert tempfile.gettempdir() != str(tmpdir)


def test_sighup_uses_one_extra_metrics_slot(start_worker: StartWorker) -> None:
    worker = start_worker("--mode", "prefork", "--workers", "2")
    assert wait_until(lambda: worker.workers_ready(2), 20)
    worker.signal(signal.SIGHUP)
    assert wait_until(lambda: "all workers replaced" in worker.log(), 30)
    assert wait_until(lambda: len(worker.workers()) == 2, 10)
    slots = {
        key
        for key in metric_values(worker.get("/metrics")[1], "corescale_connections")
        if key.startswith('{worker="')
    }
    assert len(slots) <= 3, slots


def test_sigterm_to_one_prefork_worker_is_neither_a_flap_nor_a_crash(
    start_worker: StartWorker,
) -> None:
    worker = start_worker("--mode", "prefork", "--workers", "2", env={"CORESCALE_DRAIN_DELAY": "2"})
    assert wait_until(lambda: worker.workers_ready(2), 20)
    victim = min(worker.workers())
    os.kill(victim, signal.SIGTERM)
    probes = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        probes.append(worker.get("/readyz")[0])
        time.sleep(0.1)
    assert probes.count(200) == len(probes), probes
    assert wait_until(lambda: victim not in children(worker.pid), 15)
    assert wait_until(lambda: len(worker.workers()) == 2, 10)
    page = worker.get("/metrics")[1]
    assert metric_values(page, "corescale_worker_restarts_total") == {"": 0}
    assert "died" not in worker.log()
