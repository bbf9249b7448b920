"""The benchmark's own API client: one ``kubectl proxy`` and a Deployment watch.

Why not kubectl per step: a measured spec change used to be ``kubectl
patch`` followed by ``kubectl get`` polled every 20 ms, so each sample
included a kubectl start-up (a Go binary loading the kubeconfig and
discovery, 0.1-0.3 s of CPU on a busy 2-CPU machine) and polls that
competed for the CPUs with the operator they measured. Here a change is one
HTTP PATCH through the proxy, and the time the Deployment was updated is
the time its watch event arrived, so the figure is the operator's and the
control plane's, not the measuring client's.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
import urllib.request
from typing import Any

log = logging.getLogger("bench.scale")


class Proxy:
    """``kubectl proxy`` on a free port, for plain HTTP calls to the API server."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["kubectl", "proxy", "--port=0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "Starting to serve on 127.0.0.1:PORT"
        if "serve on" not in line:
            self.proc.kill()
            raise RuntimeError(f"kubectl proxy did not start: {line!r}")
        self.base = "http://" + line.rsplit(" ", 1)[1].strip()

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        req = urllib.request.Request(self.base + path, data, headers, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def rolling_out(deployment: dict[str, Any]) -> bool:
    """Whether a Deployment's rollout is still under way, as `kubectl rollout
    status` judges it: the controller has not seen its latest spec, or not
    every replica is updated and available, or old ones remain."""
    generation: int = (deployment.get("metadata") or {}).get("generation", 0)
    wanted: int = (deployment.get("spec") or {}).get("replicas", 1)
    status = deployment.get("status") or {}
    updated: int = status.get("updatedReplicas", 0)
    observed: int = status.get("observedGeneration", 0)
    replicas: int = status.get("replicas", 0)
    available: int = status.get("availableReplicas", 0)
    return observed < generation or updated < wanted or replicas > updated or available < updated


class DeploymentWatch:
    """Every value of one pod-template annotation seen on a namespace's
    Deployments, with the monotonic time its watch event arrived, and which
    of them are rolling out."""

    def __init__(self, proxy: Proxy, namespace: str, annotation: str) -> None:
        self.proxy, self.namespace, self.annotation = proxy, namespace, annotation
        self.seen: dict[tuple[str, str], float] = {}
        self.rolling: set[str] = set()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._version = ""
        self._list()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments"

    def _list(self) -> None:
        listed = self.proxy.request("GET", self._path())
        with self._changed:
            self.rolling.clear()  # a list replaces all that was known
        for item in listed["items"]:
            self._event({"type": "ADDED", "object": item})
        self._version = listed["metadata"]["resourceVersion"]

    def _run(self) -> None:
        """Follow the watch, resuming from the last version when the server
        ends it, or from a new list when that version has expired."""
        while not self._stop.is_set():
            if not self._version:
                try:
                    self._list()
                except OSError as exc:
                    log.info("deployment list failed (%s); retrying", exc)
                    time.sleep(0.5)
                    continue
            url = f"{self.proxy.base}{self._path()}?watch=1&resourceVersion={self._version}"
            try:
                with urllib.request.urlopen(url, timeout=300) as stream:
                    for line in stream:
                        self._event(json.loads(line))
            except (OSError, ValueError) as exc:
                log.info("deployment watch ended (%s); resuming", exc)
                time.sleep(0.2)

    def _event(self, event: dict[str, Any]) -> None:
        arrived = time.monotonic()
        obj = event.get("object") or {}
        if event.get("type") == "ERROR":
            self._version = ""  # expired: list again
            raise ValueError(obj.get("message", "watch error"))
        meta = obj.get("metadata") or {}
        self._version = meta.get("resourceVersion", self._version)
        notes = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
        mark = (notes.get("annotations") or {}).get(self.annotation)
        with self._changed:
            if event.get("type") != "DELETED" and rolling_out(obj):
                self.rolling.add(meta["name"])
            else:
                self.rolling.discard(meta["name"])
            if mark is not None:
                self.seen.setdefault((meta["name"], mark), arrived)
            self._changed.notify_all()

    def wait(self, name: str, mark: str, timeout: float) -> float:
        """The time `name` first carried `mark`; raises after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (name, mark) not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{name} never carried {self.annotation}={mark}")
                self._changed.wait(left)
            return self.seen[(name, mark)]

    def wait_settled(self, timeout: float) -> None:
        """Returns once no Deployment of the namespace is rolling out; raises after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.rolling:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"still rolling out: {sorted(self.rolling)[:5]}")
                self._changed.wait(left)

    def close(self) -> None:
        self._stop.set()
