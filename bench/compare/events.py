"""Worker events under load for ``make bench-compare``: adding one worker,
deleting a pod gracefully and killing a worker, in each mode.

A light closed-loop load (a new connection per request, so kube-proxy picks
a pod for each) runs through the setup's Service the whole time and keeps
every answer with its time; an event's failed requests are those from its
start until a few seconds after it has recovered. Recovery is what serves
traffic again: for a pod, its address listed ready in the Service's
EndpointSlices (kube-proxy's input); for a forked worker, the new process
answering a request on its pod's address.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from cluster import pods, processes, ready_endpoints

from tests.e2e.operator_helpers import get
from tests.kube import kubectl, wait_for

log = logging.getLogger(__name__)
AFTER_SECONDS = 3.0
"""Requests counted after recovery: late failures (a stale kube-proxy rule) belong to the event."""


class Load:
    """``users`` threads each sending ``path`` again and again, a new connection each time."""

    def __init__(self, url: str, users: int = 6, path: str = "/io?ms=20") -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "", parts.port or 80, path
        self.records: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._user, daemon=True) for _ in range(users)]

    def _user(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            ok = False
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                conn.request("GET", self.path, headers={"Connection": "close"})
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                time.sleep(0.05)
            self.records.append((started, ok))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def window(self, start: float, end: float) -> list[tuple[float, bool]]:
        return [(t, ok) for t, ok in self.records if start <= t < end]


def _answers_new_pid(ip: str, port: int, known: set[int]) -> bool:
    """A request on the pod's own address answered by a process not in ``known``."""
    conn = http.client.HTTPConnection(ip, port, timeout=2)
    try:
        conn.request("GET", "/pid", headers={"Connection": "close"})
        return int(conn.getresponse().read()) not in known
    finally:
        conn.close()


def _pod(namespace: str, setup: str, index: int = 0) -> dict[str, Any]:
    return sorted(pods(namespace, setup), key=lambda p: p["metadata"]["name"])[index]


def _uid(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["uid"])


def _port(pod: dict[str, Any]) -> int:
    return int(pod["spec"]["containers"][0]["ports"][0]["containerPort"])


def _restarts(namespace: str, name: str) -> int:
    pod = get(namespace, "pod", name)
    return sum(s.get("restartCount", 0) for s in pod["status"].get("containerStatuses", []))


def _settled(namespace: str, setup: str, workers_in_pods: int) -> Callable[[], bool]:
    """Every pod of the setup ready and listed, and as many as wanted."""

    def probe() -> bool:
        current = pods(namespace, setup)
        ips = {p["status"].get("podIP") for p in current}
        return len(current) == workers_in_pods and ips == ready_endpoints(namespace, setup)

    return probe


def pods_add(namespace: str, workers: int) -> float:
    before = ready_endpoints(namespace, "pods")
    start = time.monotonic()
    kubectl("scale", "-n", namespace, "corecluster/pods", f"--replicas={workers + 1}")
    wait_for(
        "the new pod listed",
        lambda: len(ready_endpoints(namespace, "pods") - before) > 0,
        timeout=180,
        interval=0.05,
    )
    took = time.monotonic() - start
    kubectl("scale", "-n", namespace, "corecluster/pods", f"--replicas={workers}")
    wait_for("back to the budget", _settled(namespace, "pods", workers), timeout=180)
    return took


def _delete_pod(namespace: str, setup: str, pods_wanted: int) -> float:
    """Delete one pod of ``setup`` gracefully; seconds until its replacement is listed."""
    victim = _pod(namespace, setup)
    ip = victim["status"]["podIP"]
    start = time.monotonic()
    kubectl("delete", "-n", namespace, "pod", victim["metadata"]["name"], "--wait=false")

    def replaced() -> bool:
        listed = ready_endpoints(namespace, setup)
        return ip not in listed and len(listed) == pods_wanted

    wait_for("a replacement pod listed", replaced, timeout=180, interval=0.05)
    took = time.monotonic() - start
    wait_for("the old pod gone", _settled(namespace, setup, pods_wanted), timeout=180)
    return took


def pods_delete(namespace: str, workers: int) -> float:
    return _delete_pod(namespace, "pods", workers)


def pods_kill(namespace: str, workers: int) -> float:
    victim = _pod(namespace, "pods")
    name, ip = victim["metadata"]["name"], victim["status"]["podIP"]
    before = _restarts(namespace, name)
    init = next(pid for pid, nspid in processes(_uid(victim)) if nspid == 1)
    start = time.monotonic()
    os.kill(init, signal.SIGKILL)

    def back() -> bool:
        return _restarts(namespace, name) > before and ip in ready_endpoints(namespace, "pods")

    wait_for("the killed worker restarted and listed", back, timeout=180, interval=0.05)
    took = time.monotonic() - start
    wait_for("settled", _settled(namespace, "pods", workers), timeout=180)
    return took


def _prefork_new_worker(namespace: str, act: Callable[[int, list[tuple[int, int]]], None]) -> float:
    """Time from ``act`` on the prefork pod until a new worker process answers."""
    pod = _pod(namespace, "prefork")
    uid, ip, port = _uid(pod), pod["status"]["podIP"], _port(pod)
    procs = processes(uid)
    known = {nspid for _, nspid in procs}
    master = next(pid for pid, nspid in procs if nspid == 1)
    start = time.monotonic()
    act(master, procs)
    wait_for(
        "a new worker answering",
        lambda: _answers_new_pid(ip, port, known),
        timeout=120,
        interval=0.02,
    )
    return time.monotonic() - start


def _wait_workers(pod: dict[str, Any], workers: int, what: str) -> None:
    """Back to the budget: the prefork pod holds its master and ``workers`` workers."""
    wait_for(what, lambda: len(processes(_uid(pod))) == workers + 1, timeout=120, interval=0.2)


def prefork_add(namespace: str, workers: int) -> float:
    took = _prefork_new_worker(namespace, lambda master, _: os.kill(master, signal.SIGTTIN))
    pod = _pod(namespace, "prefork")
    master = next(pid for pid, nspid in processes(_uid(pod)) if nspid == 1)
    os.kill(master, signal.SIGTTOU)
    _wait_workers(pod, workers, "the extra worker retired")
    return took


def prefork_kill(namespace: str, workers: int) -> float:
    def kill_one(_: int, procs: list[tuple[int, int]]) -> None:
        os.kill(next(pid for pid, nspid in procs if nspid != 1), signal.SIGKILL)

    took = _prefork_new_worker(namespace, kill_one)
    _wait_workers(_pod(namespace, "prefork"), workers, "every worker back")
    return took


def prefork_delete(namespace: str, workers: int) -> float:
    return _delete_pod(namespace, "prefork", 1)


EVENTS: dict[str, tuple[tuple[str, Callable[[str, int], float]], ...]] = {
    "pods": (
        ("add one worker (a pod)", pods_add),
        ("delete a pod (graceful)", pods_delete),
        ("kill a worker (SIGKILL)", pods_kill),
    ),
    "prefork": (
        ("add one worker (SIGTTIN)", prefork_add),
        ("delete a pod (graceful)", prefork_delete),
        ("kill a worker (SIGKILL)", prefork_kill),
    ),
}


def measure(namespace: str, setup: str, url: str, workers: int) -> list[dict[str, Any]]:
    """Every event of ``setup`` in turn under one light load; one row per event."""
    rows: list[dict[str, Any]] = []
    with Load(url) as load:
        time.sleep(2)
        for name, event in EVENTS[setup]:
            log.info("%s: %s", setup, name)
            start = time.monotonic()
            took = event(namespace, workers)
            time.sleep(AFTER_SECONDS)
            answers = load.window(start, start + took + AFTER_SECONDS)
            before = load.window(start - 2, start)
            rows.append(
                {
                    "setup": setup,
                    "event": name,
                    "seconds": round(took, 2),
                    "failed": sum(1 for _, ok in answers if not ok),
                    "requests": len(answers),
                    "timeline": _timeline(before + answers, start),
                }
            )
            time.sleep(2)
    return rows


def _timeline(answers: list[tuple[float, bool]], start: float) -> list[tuple[float, int, int]]:
    """(seconds since the event, answered, failed) per 250 ms."""
    buckets: dict[int, list[int]] = {}
    for t, ok in answers:
        bucket = buckets.setdefault(int((t - start) // 0.25), [0, 0])
        bucket[0 if ok else 1] += 1
    return [(b * 0.25, ok, failed) for b, (ok, failed) in sorted(buckets.items())]
