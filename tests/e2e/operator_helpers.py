"""Helpers for the operator's end-to-end tests.

The operator runs as a process on the host (``python -m corescale.operator``
with the test cluster's KUBECONFIG), watching only the test's namespace, so
a test can stop, kill and restart it and read its log. The CRDs come from
manifests/crd/, the same files the chart installs.

The fixtures built on them, ``crds`` and ``operator``, are in conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.kube import http_get, kubectl, wait_for

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "manifests" / "crd"
CRD_NAMES = ("coreclusters.corescale.io", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev")
START_TIMEOUT = 60
READY_TIMEOUT = 240
"""Two shared cores: pods start in seconds when idle, much slower under a build."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    """One ``corescale-operator`` process on the host, restartable, with its log kept."""

    def __init__(self, namespace: str, log_dir: Path, **env: str) -> None:
        self.namespace = namespace
        self.log_dir = log_dir
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.metrics_url = ""
        """The operator's own /metrics (CORESCALE_METRICS), on a free port per start."""

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.namespace}-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        port, metrics_port = _free_port(), _free_port()
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        env = (
            os.environ
            | {
                "CORESCALE_NAMESPACES": self.namespace,
                "CORESCALE_LIVENESS": f"127.0.0.1:{port}",
                "CORESCALE_METRICS": f"127.0.0.1:{metrics_port}",
                "CORESCALE_WORKER_IMAGE": "corescale-worker:dev",
                "PYTHONUNBUFFERED": "1",
            }
            | self.env
        )
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "corescale.operator"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )

        def alive() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.log()}")
            http_get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return True

        wait_for("the operator's liveness endpoint", alive, timeout=START_TIMEOUT, interval=0.3)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGKILL stands for a crash: no cleanup at all)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        """Everything every run of this operator wrote."""
        parts = []
        for start in range(1, self.starts + 1):
            path = self.log_dir / f"operator-{self.namespace}-{start}.log"
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


def apply(namespace: str, manifest: dict[str, Any] | str) -> str:
    """``kubectl apply`` a manifest (dict or YAML text) into ``namespace``."""
    text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
    return kubectl("apply", "-n", namespace, "-f", "-", stdin=text)


def corecluster(name: str, **spec: Any) -> dict[str, Any]:
    """A CoreCluster manifest; tests keep drains short so pods go quickly."""
    return {
        "apiVersion": "corescale.io/v1alpha1",
        "kind": "CoreCluster",
        "metadata": {"name": name},
        "spec": {"drainSeconds": 1, "shutdownTimeoutSeconds": 5, **spec},
    }


def get(namespace: str, kind: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(kubectl("get", "-n", namespace, kind, name, "-o", "json"))
    return obj


def items(namespace: str, kind: str, selector: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(
        kubectl("get", "-n", namespace, kind, "-l", selector, "-o", "json")
    )["items"]
    return found


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def wait_ready(
    namespace: str, name: str, workers: int, timeout: float = READY_TIMEOUT
) -> dict[str, Any]:
    """Wait until the CoreCluster is Ready for its current generation with ``workers`` ready."""

    def probe() -> dict[str, Any] | None:
        cc = get(namespace, "corecluster", name)
        ready = condition(cc, "Ready")
        current = ready.get("observedGeneration") == cc["metadata"]["generation"]
        if (
            ready.get("status") == "True"
            and current
            and (cc["status"].get("readyReplicas") == workers)
        ):
            return cc
        return None

    return wait_for(
        f"CoreCluster {namespace}/{name} Ready with {workers} workers", probe, timeout=timeout
    )


def events(namespace: str, name: str) -> list[dict[str, Any]]:
    """The events on one CoreCluster, oldest first."""
    found = json.loads(
        kubectl(
            "get",
            "events",
            "-n",
            namespace,
            "-o",
            "json",
            "--field-selector",
            f"involvedObject.kind=CoreCluster,involvedObject.name={name}",
        )
    )["items"]
    return sorted(found, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def wait_event(
    namespace: str, name: str, reason: str, text: str = "", timeout: float = 60
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        for event in events(namespace, name):
            if event.get("reason") == reason and text in event.get("message", ""):
                return event
        return None

    return wait_for(f"event {reason} {text!r} on {name}", probe, timeout=timeout)


def service_url(namespace: str, name: str, path: str = "/") -> str:
    service = get(namespace, "service", name)
    port = service["spec"]["ports"][0]["port"]
    return f"http://{service['spec']['clusterIP']}:{port}{path}"


def wait_serving(namespace: str, name: str, timeout: float = 60) -> str:
    """Wait until the CoreCluster's Service answers from the host, and return its URL.

    Ready pods are not yet a routed Service: kube-proxy writes its rules a
    moment after the endpoints change, and until then the ClusterIP refuses.
    """
    url = service_url(namespace, name)
    wait_for(f"Service {namespace}/{name} to answer", lambda: http_get(url), timeout=timeout)
    return url


def requests_by_code(pod_ip: str, port: int, code: str) -> float:
    """The pod's ``corescale_requests_total`` for one status code, from its own /metrics."""
    total = 0.0
    for line in http_get(f"http://{pod_ip}:{port}/metrics").splitlines():
        if line.startswith("corescale_requests_total{") and f'code="{code}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
