"""The operator's own autoscaler on the real cluster, in both modes: a load
step of requests that wait (``/io``, so the machine's CPUs stay free) sent
from the host through the Service scales the CoreCluster up, the limits
hold, and when the load stops it scales back down after its window.

Spec changes in the tests use a short stable window so a run takes a minute,
not the default one."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.e2e.operator_helpers import (
    OperatorProcess,
    apply,
    corecluster,
    events,
    get,
    wait_ready,
    wait_serving,
)
from tests.kube import http_get, kubectl, wait_for

AUTOSCALING = {
    "minReplicas": 1,
    "maxReplicas": 4,
    "targetInFlight": 2,
    "scaleDown": {"stableWindowSeconds": 10, "periodSeconds": 2},
}


class _Load:
    """``clients`` loops of back-to-back requests to ``/io?ms=…`` through the Service."""

    def __init__(self, url: str, clients: int, milliseconds: int = 400) -> None:
        self.url = f"{url.rstrip('/')}/io?ms={milliseconds}"
        self.stopping = threading.Event()
        self.failures = 0
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                http_get(self.url, timeout=10)
            except Exception:
                self.failures += 1
                time.sleep(0.2)

    def __enter__(self) -> _Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=15)


def _autoscaling(namespace: str) -> dict[str, Any]:
    status: dict[str, Any] = get(namespace, "corecluster", "hello").get("status") or {}
    return status.get("autoscaling") or {}


def _desired(namespace: str) -> int:
    return int(_autoscaling(namespace).get("desiredReplicas", 0))


def _wait_settled(namespace: str, per_pod: int = 1) -> dict[str, Any]:
    """Ready, with as many workers ready as the autoscaler last decided.

    In prefork mode workers come ``per_pod`` at a time, so a decision of 3
    workers of pods of 2 is carried out as 4 workers.
    """

    def settled() -> dict[str, Any] | None:
        cc = get(namespace, "corecluster", "hello")
        status = cc.get("status") or {}
        ready: dict[str, Any] = next(
            (c for c in status.get("conditions", []) if c["type"] == "Ready"), {}
        )
        desired = (status.get("autoscaling") or {}).get("desiredReplicas")
        if desired is None or ready.get("status") != "True":
            return None
        pods = -(-int(desired) // per_pod)
        return cc if status.get("readyReplicas") == pods * per_pod else None

    return wait_for("the decided workers to be ready", settled, timeout=120)


class _Watch(threading.Thread):
    """Every desired count the status shows while a test runs."""

    def __init__(self, namespace: str) -> None:
        super().__init__(daemon=True)
        self.namespace = namespace
        self.seen: list[int] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            desired = _desired(self.namespace)
            if desired and (not self.seen or self.seen[-1] != desired):
                self.seen.append(desired)


@pytest.mark.e2e
def test_pods_mode_scales_up_on_load_holds_the_limits_and_scales_back_down(
    operator: OperatorProcess, namespace: str
) -> None:
    apply(namespace, corecluster("hello", replicas=1, autoscaling=AUTOSCALING))
    wait_ready(namespace, "hello", workers=1)
    url = wait_serving(namespace, "hello")
    watch = _Watch(namespace)
    watch.start()
    try:
        with _Load(url, clients=6) as load:
            # six requests in flight, two per worker: three workers
            wait_for("a scale up to 3 workers", lambda: _desired(namespace) >= 3, timeout=30)
            _wait_settled(namespace)
        assert load.failures == 0
        decision = _autoscaling(namespace)["lastDecision"]
        assert decision["to"] > decision["from"] >= 1
        assert "in flight" in decision["reason"] and "target 2" in decision["reason"]
        scaled = [e["message"] for e in events(namespace, "hello") if e["reason"] == "Scaled"]
        assert any(m.startswith("scaled 1 -> ") and "in flight" in m for m in scaled), scaled
        assert f"{namespace}/hello: scaled 1 -> " in operator.log()

        with _Load(url, clients=20):
            wait_for("the maximum of 4 workers", lambda: _desired(namespace) == 4, timeout=30)
            time.sleep(3)
            assert _desired(namespace) == 4
        # no load: after the ten-second window, down to minReplicas
        wait_for("a scale down to 1 worker", lambda: _desired(namespace) == 1, timeout=90)
        wait_ready(namespace, "hello", workers=1, timeout=120)
    finally:
        watch.stopping.set()
        watch.join(timeout=5)
    assert min(watch.seen) >= 1 and max(watch.seen) <= 4, watch.seen
    steps = list(zip(watch.seen, watch.seen[1:], strict=False))
    assert all(after >= (before + 1) // 2 for before, after in steps if after < before), steps


@pytest.mark.e2e
def test_prefork_mode_adds_pods_of_its_workers(operator: OperatorProcess, namespace: str) -> None:
    apply(
        namespace,
        corecluster("hello", mode="prefork", workersPerPod=2, replicas=2, autoscaling=AUTOSCALING),
    )
    wait_ready(namespace, "hello", workers=2)
    url = wait_serving(namespace, "hello")
    with _Load(url, clients=6) as load:
        wait_for("a scale up to 3 workers", lambda: _desired(namespace) >= 3, timeout=30)
        cc = _wait_settled(namespace, per_pod=2)
    assert load.failures == 0
    assert cc["status"]["pods"] == 2  # 3 or 4 workers: two pods of two
    assert get(namespace, "deployment", "hello-prefork")["spec"]["replicas"] == 2
    wait_for("a scale down to 2 workers", lambda: _desired(namespace) <= 2, timeout=90)
    wait_ready(namespace, "hello", workers=2, timeout=120)


@pytest.mark.e2e
def test_kubectl_scale_is_ignored_and_reported_while_autoscaling(
    operator: OperatorProcess, namespace: str
) -> None:
    apply(namespace, corecluster("hello", replicas=1, autoscaling=AUTOSCALING))
    wait_ready(namespace, "hello", workers=1)
    wait_for(
        "the autoscaler to record spec.replicas",
        lambda: _autoscaling(namespace).get("specReplicas") == 1,
        timeout=30,
    )
    kubectl("scale", "-n", namespace, "corecluster/hello", "--replicas=3")

    def warned() -> bool:
        return any(e["reason"] == "ReplicasIgnored" for e in events(namespace, "hello"))

    wait_for("a ReplicasIgnored event", warned, timeout=30)
    time.sleep(3)
    assert get(namespace, "deployment", "hello-pods")["spec"]["replicas"] == 1
    assert _desired(namespace) == 1
