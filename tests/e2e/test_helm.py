"""The Helm chart on a real cluster: install, upgrade, uninstall keeping the CRDs.

The tests are the steps of one release's life, in order, sharing one
module-scoped install: installing the operator is the slow part, and an
upgrade or an uninstall is only meaningful on a release that has been used.

The release is namespace-scoped (watchNamespaces = its own namespace), so it
never acts on the CoreClusters of other tests, and the operator's tests,
which run their own operator on the host, never meet it.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.charttools import (
    CHART,
    MANIFESTS,
    adopt_crds,
    create_namespace,
    disown_crds,
    helm,
    release_coreclusters,
    run,
    source_crd_names,
    tool,
)
from tests.kube import http_get, kubectl, kubectl_json, wait_for

pytestmark = pytest.mark.e2e

READY_TIMEOUT = "300s"
"""Two shared cores: a pod starts in seconds when idle, much slower under load."""


@dataclass
class Release:
    name: str
    namespace: str
    notes: str = ""

    @property
    def operator(self) -> str:
        return f"{self.name}-corescale-operator"

    @property
    def selector(self) -> str:
        return f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component=operator"


def operator_pods(release: Release) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = kubectl_json(
        "get", "pods", "-n", release.namespace, "-l", release.selector
    )["items"]
    return pods


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return pod["metadata"].get("deletionTimestamp") is None and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions
    )


def service_answers(namespace: str, name: str) -> str:
    """The body of GET / through the Service's ClusterIP, from this host."""
    service = kubectl_json("get", "service", name, "-n", namespace)
    url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}/"
    return wait_for(f"{url} to answer", lambda: http_get(url), timeout=120)


def helm_installed(release: Release) -> bool:
    proc = run(
        tool("helm"), "status", release.name, "-n", release.namespace, check=False, timeout=60
    )
    return proc.returncode == 0


@pytest.fixture(scope="module")
def release(kubeconfig: str) -> Iterator[Release]:
    """A release of the chart with default values, but for its namespace scope."""
    suffix = secrets.token_hex(3)
    rel = Release(name=f"e2e-helm-{suffix}", namespace=f"e2e-helm-{suffix}")
    create_namespace(rel.namespace)
    adopt_crds(rel.name, rel.namespace)
    try:
        rel.notes = helm(
            "upgrade",
            "--install",
            rel.name,
            str(CHART),
            "--namespace",
            rel.namespace,
            "--set",
            f"watchNamespaces={{{rel.namespace}}}",
            "--wait",
            "--timeout",
            "5m",
        )
        yield rel
    finally:
        if helm_installed(rel):
            # The CoreClusters go first, while the operator can still let them go.
            subprocess.run(
                [
                    tool("kubectl"),
                    "delete",
                    "coreclusters",
                    "--all",
                    "-n",
                    rel.namespace,
                    "--timeout=120s",
                ],
                capture_output=True,
                check=False,
                timeout=150,
            )
            helm("uninstall", rel.name, "-n", rel.namespace, "--wait", "--timeout", "3m")
        release_coreclusters(rel.namespace)
        disown_crds()
        kubectl("delete", "namespace", rel.namespace, "--wait=false")


def test_install_runs_the_operator_and_the_example_becomes_ready_and_answers(
    release: Release,
) -> None:
    kubectl(
        "rollout",
        "status",
        f"deployment/{release.operator}",
        "-n",
        release.namespace,
        "--timeout=300s",
    )
    (pod,) = operator_pods(release)
    assert ready(pod)
    assert pod["spec"]["containers"][0]["image"] == "corescale-operator:dev"
    # The restricted namespace admitted it: it runs as the image's non-root user.
    assert pod["spec"]["securityContext"]["runAsUser"] == 65532

    # NOTES.txt tells the next step, for this release's names.
    assert f"rollout status deployment/{release.operator}" in release.notes, release.notes
    assert f"kubectl apply -n {release.namespace} -f manifests/cluster.yaml" in release.notes
    assert f"It watches the namespaces: {release.namespace}." in release.notes

    kubectl("apply", "-n", release.namespace, "-f", str(MANIFESTS / "cluster.yaml"))
    kubectl(
        "wait",
        "-n",
        release.namespace,
        "--for=condition=Ready",
        "corecluster/hello",
        f"--timeout={READY_TIMEOUT}",
    )
    cc = kubectl_json("get", "corecluster", "hello", "-n", release.namespace)
    assert cc["status"]["readyReplicas"] == 2
    # No spec.image: the workers run the chart's workerImage, the worker image.
    workers = kubectl_json("get", "pods", "-n", release.namespace, "-l", cc["status"]["selector"])
    assert {p["spec"]["containers"][0]["image"] for p in workers["items"]} == {
        "corescale-worker:dev"
    }
    assert "corescale" in service_answers(release.namespace, "hello")

    # The chart's RBAC is enough: the API never refused the operator.
    log = kubectl("logs", "-n", release.namespace, f"deployment/{release.operator}")
    assert "forbidden" not in log.lower(), log


def test_upgrade_with_changed_values_replaces_the_operator_and_it_keeps_working(
    release: Release,
) -> None:
    (old,) = operator_pods(release)
    helm(
        "upgrade",
        release.name,
        str(CHART),
        "--namespace",
        release.namespace,
        "--reuse-values",
        "--set",
        "logFormat=json",
        "--set",
        "extraLabels.upgraded=yes",
        "--wait",
        "--timeout",
        "5m",
    )

    def replaced() -> dict[str, Any] | None:
        pods = operator_pods(release)
        if len(pods) == 1 and pods[0]["metadata"]["uid"] != old["metadata"]["uid"]:
            return pods[0] if ready(pods[0]) else None
        return None

    new = wait_for("the upgraded operator pod alone and ready", replaced, timeout=300)
    assert new["metadata"]["labels"]["upgraded"] == "yes"
    env = {e["name"]: e.get("value") for e in new["spec"]["containers"][0]["env"]}
    assert env["CORESCALE_LOG_FORMAT"] == "json"

    # The new operator acts: a scale is carried out, and it logs it as JSON.
    kubectl("scale", "-n", release.namespace, "corecluster/hello", "--replicas=3")
    kubectl(
        "wait",
        "-n",
        release.namespace,
        "--for=jsonpath={.status.readyReplicas}=3",
        "corecluster/hello",
        f"--timeout={READY_TIMEOUT}",
    )

    def json_log() -> list[dict[str, Any]] | None:
        lines = kubectl("logs", "-n", release.namespace, new["metadata"]["name"]).splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
        return entries if any("hello" in e["message"] for e in entries) else None

    entries = wait_for("a JSON log line about hello", json_log, timeout=60)
    assert all({"time", "level", "message"} <= entry.keys() for entry in entries)


def test_uninstall_keeps_the_crds_and_the_coreclusters(release: Release) -> None:
    helm("uninstall", release.name, "-n", release.namespace, "--wait", "--timeout", "3m")
    deployments = kubectl_json("get", "deployments", "-n", release.namespace)["items"]
    assert release.operator not in {d["metadata"]["name"] for d in deployments}
    roles = kubectl_json("get", "clusterroles", "-l", f"app.kubernetes.io/instance={release.name}")
    assert roles["items"] == []

    crds = {c["metadata"]["name"]: c for c in kubectl_json("get", "crds")["items"]}
    for name in source_crd_names():
        assert name in crds, f"{name} was deleted"
        assert crds[name]["metadata"].get("deletionTimestamp") is None
        assert crds[name]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # The CoreCluster and its workers stay and keep serving without the operator.
    cc = kubectl_json("get", "corecluster", "hello", "-n", release.namespace)
    assert cc["metadata"].get("deletionTimestamp") is None
    assert "corescale" in service_answers(release.namespace, "hello")
