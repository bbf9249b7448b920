"""Scaling a CoreCluster: ``kubectl scale`` in both modes, a real
HorizontalPodAutoscaler through the scale subresource, and a switch of mode
while traffic keeps flowing."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.e2e.operator_helpers import (
    OperatorProcess,
    apply,
    condition,
    corecluster,
    get,
    items,
    wait_event,
    wait_ready,
    wait_serving,
)
from tests.kube import http_get, kubectl, wait_for

SELECTOR = "corescale.io/cluster=hello"

# Who scaled, as the operator reads it from managedFields; when the API server
# records no manager for a scale write it says the generic form.
BY_KUBECTL = ("(kubectl scale)", "(kubectl scale or an autoscaler)")
BY_HPA = ("(autoscaler)", "(kubectl scale or an autoscaler)")


def _scaled_event(namespace: str, text: str, by: tuple[str, ...]) -> str:
    message: str = wait_event(namespace, "hello", "Scaled", text)["message"]
    assert message.removeprefix(text).strip() in by, message
    return message


def _scale(namespace: str, replicas: int) -> None:
    kubectl("scale", "-n", namespace, "corecluster/hello", f"--replicas={replicas}")


def _pods(namespace: str) -> list[str]:
    return sorted(
        p["metadata"]["name"]
        for p in items(namespace, "pods", SELECTOR)
        if not p["metadata"].get("deletionTimestamp")
    )


@pytest.mark.e2e
def test_kubectl_scale_in_pods_mode(operator: OperatorProcess, namespace: str) -> None:
    apply(namespace, corecluster("hello", replicas=1))
    wait_ready(namespace, "hello", workers=1)

    _scale(namespace, 3)
    cc = wait_ready(namespace, "hello", workers=3)
    assert cc["spec"]["replicas"] == 3 and cc["status"]["replicas"] == 3
    assert get(namespace, "deployment", "hello-pods")["spec"]["replicas"] == 3
    wait_for("three pods", lambda: len(_pods(namespace)) == 3, timeout=120)
    message = _scaled_event(namespace, "scaled 1 -> 3 workers", BY_KUBECTL)
    assert f"{namespace}/hello: {message}" in operator.log()

    _scale(namespace, 1)
    wait_ready(namespace, "hello", workers=1)
    wait_for("one pod", lambda: len(_pods(namespace)) == 1, timeout=120)


@pytest.mark.e2e
def test_kubectl_scale_in_prefork_mode(operator: OperatorProcess, namespace: str) -> None:
    apply(namespace, corecluster("hello", mode="prefork", workersPerPod=2, replicas=2))
    cc = wait_ready(namespace, "hello", workers=2)
    assert cc["status"]["pods"] == 1
    container = get(namespace, "deployment", "hello-prefork")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["args"] == ["--mode", "prefork", "--workers", "2", "--bind", "0.0.0.0:8080"]
    assert container["resources"]["limits"]["cpu"] == "2"
    assert container["resources"]["requests"]["cpu"] == "200m"

    _scale(namespace, 3)  # three workers need two pods of two
    cc = wait_ready(namespace, "hello", workers=4)
    assert cc["status"]["pods"] == 2 and cc["status"]["replicas"] == 4
    assert get(namespace, "deployment", "hello-prefork")["spec"]["replicas"] == 2
    _scaled_event(namespace, "scaled 2 -> 4 workers", BY_KUBECTL)
    # The scale subresource reports workers, so kubectl and an HPA see them.
    scale = json.loads(
        kubectl(
            "get",
            "--raw",
            f"/apis/corescale.io/v1alpha1/namespaces/{namespace}/coreclusters/hello/scale",
        )
    )
    assert scale["spec"]["replicas"] == 3
    assert scale["status"]["replicas"] == 4
    assert scale["status"]["selector"] == SELECTOR


@pytest.mark.e2e
def test_a_horizontal_pod_autoscaler_scales_through_the_scale_subresource(
    operator: OperatorProcess, namespace: str
) -> None:
    """Without metrics the HPA still reads the scale and enforces minReplicas."""
    apply(namespace, corecluster("hello", replicas=1))
    wait_ready(namespace, "hello", workers=1)
    apply(
        namespace,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "hello"},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "corescale.io/v1alpha1",
                    "kind": "CoreCluster",
                    "name": "hello",
                },
                "minReplicas": 2,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        },
    )
    wait_ready(namespace, "hello", workers=2)
    assert get(namespace, "corecluster", "hello")["spec"]["replicas"] == 2

    def hpa_saw_the_scale() -> dict[str, Any] | None:
        hpa = get(namespace, "hpa", "hello")
        able = condition(hpa, "AbleToScale")
        if able.get("status") == "True" and hpa["status"].get("currentReplicas") == 2:
            return hpa
        return None

    hpa = wait_for("the HPA to report the CoreCluster's scale", hpa_saw_the_scale, timeout=120)
    assert hpa["status"]["desiredReplicas"] >= 2
    _scaled_event(namespace, "scaled 1 -> 2 workers", BY_HPA)


class _Traffic(threading.Thread):
    """Requests through the Service, back to back, counting what fails."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                http_get(self.url, timeout=5)
                self.ok += 1
            except Exception as exc:
                self.failures.append(repr(exc))
            time.sleep(0.02)


@pytest.mark.e2e
def test_switching_mode_keeps_serving(operator: OperatorProcess, namespace: str) -> None:
    # The default drain (5 s), not the tests' short one: kube-proxy must
    # have dropped a stopping pod before it stops serving.
    apply(namespace, corecluster("hello", replicas=2, drainSeconds=5))
    wait_ready(namespace, "hello", workers=2)
    traffic = _Traffic(wait_serving(namespace, "hello"))
    traffic.start()
    try:
        wait_for("traffic to flow", lambda: traffic.ok > 10, timeout=30)
        apply(
            namespace,
            corecluster("hello", replicas=2, drainSeconds=5, mode="prefork", workersPerPod=2),
        )
        cc = wait_ready(namespace, "hello", workers=2)
        wait_for(
            "the pods Deployment to go",
            lambda: not items(namespace, "deployments", SELECTOR + ",corescale.io/mode=pods"),
            timeout=120,
        )
        wait_for(
            "only prefork pods",
            lambda: all("prefork" in name for name in _pods(namespace)),
            timeout=120,
        )
        served_during_switch = traffic.ok
    finally:
        traffic.stopping.set()
        traffic.join(timeout=10)
    assert cc["status"]["pods"] == 1
    assert served_during_switch > 50
    assert traffic.failures == [], traffic.failures[:5]
    wait_event(namespace, "hello", "SwitchedMode", "switched pods -> prefork")
