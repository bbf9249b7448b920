"""A CoreCluster from apply to delete: children as specified, pods admitted by
the restricted Pod Security level, traffic reaching every pod, and nothing
left behind."""

from __future__ import annotations

from urllib.error import HTTPError

import pytest

from tests.e2e.operator_helpers import (
    OperatorProcess,
    apply,
    condition,
    corecluster,
    events,
    get,
    items,
    requests_by_code,
    service_url,
    wait_ready,
    wait_serving,
)
from tests.kube import http_get, kubectl, wait_for

SELECTOR = "corescale.io/cluster=hello"


@pytest.mark.e2e
def test_apply_in_a_restricted_namespace_serves_every_pod_and_delete_cleans_up(
    operator: OperatorProcess, namespace: str
) -> None:
    kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    apply(namespace, corecluster("hello", replicas=2))
    kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        "corecluster/hello",
        "--timeout=240s",
        timeout=260,
    )
    cc = wait_ready(namespace, "hello", workers=2)

    assert cc["status"]["replicas"] == 2
    assert cc["status"]["pods"] == 2 and cc["status"]["readyPods"] == 2
    assert cc["status"]["selector"] == SELECTOR
    assert cc["status"]["observedGeneration"] == cc["metadata"]["generation"]
    assert condition(cc, "Degraded")["status"] == "False"
    assert condition(cc, "Progressing")["reason"] == "Complete"

    deployment = get(namespace, "deployment", "hello-pods")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod_spec = deployment["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    assert container["image"] == "corescale-worker:dev"
    assert container["args"] == ["--mode", "single", "--bind", "0.0.0.0:8080"]
    assert container["resources"]["limits"]["cpu"] == "1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] == 1
    assert pod_spec["terminationGracePeriodSeconds"] == 1 + 5 + 5
    service = get(namespace, "service", "hello")
    assert service["spec"]["selector"] == {"corescale.io/cluster": "hello"}
    budget = get(namespace, "poddisruptionbudget", "hello")
    assert budget["spec"]["maxUnavailable"] == 1
    for child in (deployment, service, budget):
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "CoreCluster",
            "hello",
            cc["metadata"]["uid"],
        )

    # Every pod runs, restricted, and answers; traffic through the Service
    # reaches each of them. A path the app does not have answers 404, which
    # only these requests cause, so each pod's own /metrics tells whether
    # the Service sent it some.
    pods = items(namespace, "pods", SELECTOR)
    assert len(pods) == 2
    assert all(p["spec"]["securityContext"]["runAsNonRoot"] for p in pods)
    assert http_get(wait_serving(namespace, "hello")) == "Hello from corescale\n"
    sent = 0

    def every_pod_served() -> dict[str, float] | None:
        nonlocal sent
        for _ in range(20):
            with pytest.raises(HTTPError, match="404"):
                http_get(service_url(namespace, "hello", "/which-pod"))
            sent += 1
        served = {
            p["metadata"]["name"]: requests_by_code(p["status"]["podIP"], 8080, "404") for p in pods
        }
        return served if all(count > 0 for count in served.values()) else None

    served = wait_for(
        "requests through the Service to reach every pod", every_pod_served, timeout=60
    )
    assert sum(served.values()) == sent

    reasons = [e["reason"] for e in events(namespace, "hello")]
    assert reasons.count("Created") == 3
    log = operator.log()
    assert f"watching CoreClusters in {namespace}" in log
    assert f"{namespace}/hello: created Deployment hello-pods: 2 workers" in log
    assert "Traceback" not in log

    kubectl("delete", "-n", namespace, "corecluster/hello", "--wait=true", timeout=120)

    def gone() -> bool:
        left = kubectl(
            "get", "-n", namespace, "deployments,services,pdb,pods", "-l", SELECTOR, "-o", "name"
        )
        return left.strip() == ""

    wait_for("the children to be deleted with their CoreCluster", gone, timeout=120)
