"""The cluster itself: what every other end-to-end test relies on.

A Deployment behind a Service, called from the host through the ClusterIP,
exercises the scheduler, the kubelet and runtime, the CNI bridge, kube-proxy
and the controllers (Deployment, ReplicaSet, EndpointSlice) together.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.kube import (
    base_image,
    http_get,
    kubectl,
    pod_is_ready,
    wait_for,
    wait_ready_pods,
)

ROOT = Path(__file__).resolve().parents[2]

# Answers every GET with the pod's hostname (its name), so a client can tell
# which pod the Service picked. As PID 1 it ignores SIGTERM and keeps
# serving until the grace period ends, like a server that drains.
HOSTNAME_SERVER = """
import http.server, socket
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = socket.gethostname().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8080), Handler).serve_forever()
"""

SELECTOR = "app=hostname"


def _deployment(replicas: int) -> client.V1Deployment:
    container = client.V1Container(
        name="hostname",
        image=base_image(),
        image_pull_policy="IfNotPresent",
        command=["python3", "-c", HOSTNAME_SERVER],
        ports=[client.V1ContainerPort(container_port=8080)],
        readiness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/", port=8080),
            period_seconds=1,
        ),
        # Two cores in all: requests stay small so several pods fit.
        resources=client.V1ResourceRequirements(
            requests={"cpu": "10m", "memory": "16Mi"}, limits={"cpu": "1", "memory": "64Mi"}
        ),
        # What the restricted Pod Security level asks for, so the runtime's
        # seccomp and capability handling are exercised too.
        security_context=client.V1SecurityContext(
            allow_privilege_escalation=False,
            capabilities=client.V1Capabilities(drop=["ALL"]),
            run_as_non_root=True,
            run_as_user=65534,
            seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
        ),
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="hostname"),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels={"app": "hostname"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "hostname"}),
                spec=client.V1PodSpec(containers=[container], termination_grace_period_seconds=5),
            ),
        ),
    )


def _answering_pods(url: str, expected: set[str], timeout: float = 90) -> set[str]:
    """Call the Service until every expected pod has answered; return the
    names seen. Each request opens a new connection, so kube-proxy picks an
    endpoint afresh every time."""
    seen: set[str] = set()

    def probe() -> set[str] | None:
        seen.add(http_get(url))
        return seen if expected <= seen else None

    wait_for(
        f"pods {sorted(expected)} to answer on {url} (seen {sorted(seen)})", probe, timeout, 0.05
    )
    return seen


@pytest.mark.e2e
def test_service_reaches_every_pod_through_scaling_and_replacement(
    api_client: Any, namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, _deployment(replicas=2))
    service = core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="hostname"),
            spec=client.V1ServiceSpec(
                selector={"app": "hostname"},
                ports=[client.V1ServicePort(port=80, target_port=8080)],
            ),
        ),
    )
    url = f"http://{service.spec.cluster_ip}/"

    pods = {p.metadata.name for p in wait_ready_pods(core, namespace, SELECTOR, 2)}
    assert _answering_pods(url, pods) == pods

    kubectl("scale", "deployment/hostname", "--replicas=3", "-n", namespace)
    pods = {p.metadata.name for p in wait_ready_pods(core, namespace, SELECTOR, 3)}
    assert len(pods) == 3
    assert _answering_pods(url, pods) == pods

    victim = sorted(pods)[0]
    core.delete_namespaced_pod(victim, namespace)
    # The Service must answer every call while the pod is replaced, so the
    # calls are made here, where a failure fails the test, not in a probe.

    deadline = time.monotonic() + 180
    while True:
        http_get(url)
        current = core.list_namespaced_pod(namespace, label_selector=SELECTOR).items
        replaced = {p.metadata.name for p in current if pod_is_ready(p)}
        if victim not in {p.metadata.name for p in current} and len(replaced) == 3:
            break
        assert time.monotonic() < deadline, f"pod {victim} not replaced; ready: {replaced}"
        time.sleep(0.5)
    assert _answering_pods(url, replaced) == replaced


@pytest.mark.e2e
def test_node_is_ready_and_reports_allocatable(api_client: Any) -> None:
    nodes = client.CoreV1Api(api_client).list_node().items
    assert nodes
    for node in nodes:
        ready = [c.status for c in node.status.conditions if c.type == "Ready"]
        assert ready == ["True"], node.metadata.name
        allocatable = node.status.allocatable
        assert allocatable["cpu"] not in ("", "0")
        assert allocatable["memory"] not in ("", "0")
        assert int(allocatable["pods"]) > 0


@pytest.mark.e2e
def test_local_cluster_runs_the_pinned_release(kubeconfig: str, api_client: Any) -> None:
    """kubectl and the API server both report the release in versions.env
    (when the tests run on the local cluster, which builds that release)."""
    local = subprocess.run(
        [str(ROOT / "hack" / "cluster.sh"), "kubeconfig"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    server = client.VersionApi(api_client).get_code().git_version
    if kubeconfig != local:
        assert server.startswith("v1."), server
        return
    pinned = next(
        line.split("=", 1)[1].strip()
        for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
        if line.startswith("KUBERNETES_VERSION=")
    )
    assert server == pinned
    assert f"Client Version: {pinned}" in kubectl("version")
