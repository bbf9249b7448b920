"""Helpers for the worker tests: real corescale-worker processes on free loopback ports.

Test apps live in worker_test_apps.py (APP `worker_test_apps:...`); this folder
is put on the started processes' PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
READY_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port nobody listens on right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, str]:
    """One GET on a new connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Polls until the predicate holds or the timeout passes; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if predicate():
                return True
        time.sleep(interval)
    return False


def children(pid: int) -> set[int]:
    """The live (not zombie) child processes of pid, read from /proc."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry))
    return found


def metric_values(text: str, name: str) -> dict[str, float]:
    """`name{labels} value` lines of a Prometheus text page, keyed by the label text."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            values[key[len(name) :]] = float(value)
    return values


@dataclass
class Worker:
    """A corescale-worker process started by a test."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, str]:
        return get(self.port, path, timeout)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)

    def ready(self) -> bool:
        return self.get("/readyz", timeout=2)[0] == 200

    def workers(self) -> set[int]:
        return children(self.pid)

    def workers_ready(self, count: int) -> bool:
        """`count` workers alive, and as many readiness reports in the master's log."""
        return len(self.workers()) == count and self.log().count(") ready in ") >= count


StartWorker = Callable[..., Worker]


@contextlib.contextmanager
def worker_starter(tmp_path: Path) -> Iterator[StartWorker]:
    """Starts `python -m corescale.worker ARGS` and (unless wait=False) waits until /readyz is 200.

    Every process started is killed at the end of the test, with its group.
    """
    started: list[Worker] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        wait: bool = True,
        prefix: list[str] | None = None,
        port: int | None = None,
    ) -> Worker:
        port = port or free_port()
        log_path = tmp_path / f"worker-{len(started)}.log"
        environ = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "CORESCALE_DRAIN_DELAY": "0",
            "CORESCALE_SHUTDOWN_TIMEOUT": "5",
            **(env or {}),
        }
        command = [*(prefix or []), sys.executable, "-m", "corescale.worker", *args]
        if "--bind" not in args:
            command += ["--bind", f"127.0.0.1:{port}"]
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=environ,
                cwd=tmp_path,
                start_new_session=True,
            )
        worker = Worker(proc, port, log_path)
        started.append(worker)
        if wait and not wait_until(worker.ready, READY_TIMEOUT):
            pytest.fail(f"worker never became ready; its log:\n{worker.log()}")
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.proc.pid, signal.SIGKILL)
            worker.proc.wait(timeout=10)
