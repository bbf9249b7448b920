"""The chart's rendered objects, checked without a cluster.

Each test renders with `helm template` and reads the objects back, so what
is checked is what `helm install` would send to the API server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corescale.operator.api import spec as worker_spec
from corescale.operator.decide import render as render_pods
from corescale.operator.process import settings
from tests.charttools import (
    OPERATOR_NS,
    container_env,
    find,
    identities,
    render,
    sets,
    source_crds,
)

# helm renders the chart: `make test-chart` builds the pinned helm first.
pytestmark = pytest.mark.chart

OPERATOR = "corescale-operator"
CRD_NAMES = sorted(c["metadata"]["name"] for c in source_crds())


def _deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objects, "Deployment", OPERATOR)


def _rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a role grants."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_default_install_has_the_operator_its_rbac_and_the_crds() -> None:
    objects = render()
    assert identities(objects) == sorted(
        [
            ("ServiceAccount", OPERATOR_NS, OPERATOR),
            ("ClusterRole", "", OPERATOR),
            ("ClusterRole", "", f"{OPERATOR}-cluster"),
            ("ClusterRoleBinding", "", OPERATOR),
            ("ClusterRoleBinding", "", f"{OPERATOR}-cluster"),
            ("ClusterRole", "", "corescale-edit"),
            ("ClusterRole", "", "corescale-view"),
            ("Deployment", OPERATOR_NS, OPERATOR),
            ("Service", OPERATOR_NS, f"{OPERATOR}-metrics"),
        ]
        + [("CustomResourceDefinition", "", name) for name in CRD_NAMES]
    )
    assert "coreclusters.corescale.io" in CRD_NAMES


def test_operator_deployment_is_one_recreated_restricted_pod() -> None:
    deployment = _deployment(render())
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == OPERATOR
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["command"] == ["corescale-operator"]
    assert container["image"] == "corescale-operator:dev"
    assert container["imagePullPolicy"] == "IfNotPresent"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    # A read-only root needs a writable /tmp (docs/contract.md).
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    # Small requests: the node's CPUs are for the worker pods.
    assert container["resources"]["requests"]["cpu"] == "50m"
    assert "cpu" not in container["resources"].get("limits", {})


def test_probes_hit_kopfs_liveness_endpoint_on_the_port_the_operator_listens_on() -> None:
    deployment = _deployment(render("--set", "livenessPort=9090"))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"healthz": 9090, "metrics": 8080}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    loaded = settings.load(container_env(deployment))
    assert loaded.liveness_url == "http://0.0.0.0:9090/healthz"


def test_every_environment_variable_is_a_setting_the_operator_reads() -> None:
    """The chart configures the operator only through operator/settings.py:
    a variable it does not read would be a value that silently does nothing."""
    source = Path(settings.__file__).read_text()
    env = container_env(_deployment(render()))
    assert env, "the operator container has no environment"
    for name in env:
        assert f'"{name}"' in source, f"{name} is set by the chart but not read by settings.py"


def test_values_reach_the_operators_settings() -> None:
    deployment = _deployment(
        render(
            *sets(
                "logFormat=json",
                "logLevel=debug",
                "resyncSeconds=15",
                "peering.name=",
                "image.repository=registry.example/corescale",
                "image.tag=1.2.3",
            )
        )
    )
    loaded = settings.load(container_env(deployment))
    assert loaded.log_format == "json"
    assert loaded.log_level == "debug"
    assert loaded.resync_seconds == 15
    assert loaded.peering == ""
    assert loaded.clusterwide
    # CoreClusters without an image run the worker image, not the operator's.
    assert loaded.worker_image == "corescale-worker:dev"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/corescale:1.2.3"


def test_worker_image_can_differ_from_the_operators() -> None:
    env = container_env(_deployment(render("--set", "workerImage=apps/shop:7")))
    assert settings.load(env).worker_image == "apps/shop:7"


def test_cluster_wide_rbac_grants_exactly_what_the_operator_uses() -> None:
    """The full list, so that a new permission is a visible, reviewed change."""
    objects = render()
    crud = {"get", "list", "watch", "create", "update", "patch", "delete"}
    namespaced = _rules(find(objects, "ClusterRole", OPERATOR))
    expected = (
        {("corescale.io", "coreclusters", v) for v in ("get", "list", "watch", "patch", "update")}
        | {("corescale.io", "coreclusters/status", v) for v in ("get", "patch", "update")}
        | {("apps", "deployments", v) for v in crud}
        | {("", "services", v) for v in crud}
        | {("policy", "poddisruptionbudgets", v) for v in crud}
        | {("", "pods", v) for v in ("get", "list", "watch")}
        | {("discovery.k8s.io", "endpointslices", v) for v in ("get", "list", "watch")}
        | {("", "events", v) for v in ("create", "patch")}
        | {("kopf.dev", "kopfpeerings", v) for v in ("get", "list", "watch", "create", "patch")}
    )
    assert namespaced == expected
    cluster = _rules(find(objects, "ClusterRole", f"{OPERATOR}-cluster"))
    assert cluster == (
        {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")}
        | {("", "namespaces", v) for v in ("get", "list", "watch")}
        | {
            ("kopf.dev", "clusterkopfpeerings", v)
            for v in ("get", "list", "watch", "create", "patch")
        }
    )
    for role in (namespaced, cluster):
        assert not any("*" in triple for triple in role)
        assert not any(resource == "secrets" for _, resource, _ in role)


def test_namespace_scope_binds_the_operator_only_in_the_listed_namespaces() -> None:
    objects = render("--set", "watchNamespaces={team-a,team-b}")
    bindings = {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o["roleRef"]["name"]
        for o in objects
        if o["kind"] in ("RoleBinding", "ClusterRoleBinding")
    }
    assert bindings == {
        ("RoleBinding", "team-a", OPERATOR): OPERATOR,
        ("RoleBinding", "team-b", OPERATOR): OPERATOR,
        ("ClusterRoleBinding", "", f"{OPERATOR}-cluster"): f"{OPERATOR}-cluster",
    }
    # Cluster-wide it may only read; it needs no cluster-wide peering object.
    cluster = _rules(find(objects, "ClusterRole", f"{OPERATOR}-cluster"))
    assert {verb for _, _, verb in cluster} == {"get", "list", "watch"}
    loaded = settings.load(container_env(_deployment(objects)))
    assert loaded.namespaces == ("team-a", "team-b")
    assert not loaded.clusterwide


def _crds(*args: str) -> list[dict[str, Any]]:
    return [o for o in render(*args) if o["kind"] == "CustomResourceDefinition"]


def test_crds_are_kept_on_uninstall_by_default_and_can_be_left_out() -> None:
    crds = _crds()
    assert crds
    for crd in crds:
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    crds = _crds("--set", "crds.keep=false")
    assert sorted(c["metadata"]["name"] for c in crds) == CRD_NAMES
    for crd in crds:
        assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})
    assert not _crds("--set", "crds.enabled=false")


def test_rendered_crds_are_the_source_crds() -> None:
    """Only metadata labels and annotations may differ: the schema, CEL rules
    and subresources are manifests/crd/'s, byte for byte once parsed (a
    number reformatted by Helm's YAML round trip would show here)."""
    rendered = {o["metadata"]["name"]: o for o in _crds()}
    for source in source_crds():
        crd = rendered[source["metadata"]["name"]]
        assert crd["spec"] == source["spec"]
        assert crd["apiVersion"] == source["apiVersion"]
        for key, value in source["metadata"].get("labels", {}).items():
            assert crd["metadata"]["labels"][key] == value


def test_extra_labels_are_on_every_object_but_not_in_the_selector() -> None:
    objects = render("--set", "extraLabels.team=payments")
    for obj in objects:
        assert obj["metadata"]["labels"]["team"] == "payments", obj["metadata"]["name"]
    deployment = _deployment(objects)
    assert deployment["spec"]["template"]["metadata"]["labels"]["team"] == "payments"
    assert "team" not in deployment["spec"]["selector"]["matchLabels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_release_name_prefixes_every_name() -> None:
    objects = render(release="ops")
    names = {o["metadata"]["name"] for o in objects if o["kind"] != "CustomResourceDefinition"}
    assert names == {
        "ops-corescale-operator",
        "ops-corescale-operator-cluster",
        "ops-corescale-operator-metrics",
        "ops-corescale-edit",
        "ops-corescale-view",
    }


def test_scheduling_and_pod_values_are_passed_through() -> None:
    pod = _deployment(
        render(
            *sets(
                "nodeSelector.disk=ssd",
                "tolerations[0].key=dedicated",
                "tolerations[0].operator=Exists",
                "priorityClassName=system-cluster-critical",
                "podAnnotations.scrape=yes",
                "imagePullSecrets[0].name=regcred",
                "replicas=2",
                "strategy=RollingUpdate",
            )
        )
    )
    spec = pod["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"disk": "ssd"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["spec"]["template"]["metadata"]["annotations"] == {"scrape": "yes"}
    assert pod["spec"]["replicas"] == 2
    assert pod["spec"]["strategy"] == {"type": "RollingUpdate"}


def test_an_existing_service_account_is_used_without_creating_one() -> None:
    objects = render("--set", "serviceAccount.create=false", "--set", "serviceAccount.name=ops")
    assert not [o for o in objects if o["kind"] == "ServiceAccount"]
    assert _deployment(objects)["spec"]["template"]["spec"]["serviceAccountName"] == "ops"
    binding = find(objects, "ClusterRoleBinding", OPERATOR)
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ops", "namespace": OPERATOR_NS}
    ]


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    kinds = {o["kind"] for o in render("--set", "rbac.create=false")}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


MONITORING_API = ("--api-versions", "monitoring.coreos.com/v1")


def _monitors(objects: list[dict[str, Any]]) -> set[str]:
    return {o["kind"] for o in objects if o["apiVersion"] == "monitoring.coreos.com/v1"}


def test_metrics_port_is_served_passed_and_exposed_by_a_service() -> None:
    objects = render("--set", "metricsPort=9100")
    (container,) = _deployment(objects)["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == 9100
    assert settings.load(container_env(_deployment(objects))).metrics == "0.0.0.0:9100"
    service = find(objects, "Service", f"{OPERATOR}-metrics")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = _deployment(objects)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_monitors_only_where_the_prometheus_operator_api_exists() -> None:
    assert _monitors(render()) == set()
    assert _monitors(render(*MONITORING_API)) == {"PodMonitor", "ServiceMonitor"}
    # A value asks for them without the API (say, CRDs installed later) ...
    asked = sets("monitoring.podMonitor.enabled=true", "monitoring.serviceMonitor.enabled=true")
    assert _monitors(render(*asked)) == {"PodMonitor", "ServiceMonitor"}
    # ... or turns them off where it exists.
    off = sets("monitoring.podMonitor.enabled=false", "monitoring.serviceMonitor.enabled=false")
    assert _monitors(render(*MONITORING_API, *off)) == set()


def test_service_monitor_scrapes_the_operators_metrics_service() -> None:
    objects = render(*MONITORING_API, "--set", "monitoring.serviceMonitor.labels.release=prom")
    monitor = find(objects, "ServiceMonitor", OPERATOR)
    service = find(objects, "Service", f"{OPERATOR}-metrics")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]


def test_pod_monitor_selects_the_worker_pods_the_operator_renders() -> None:
    owner = render_pods.Owner("hello", "shop", "uid")
    pods = render_pods.deployment(owner, worker_spec.parse({}, "corescale-worker:dev"))
    template = pods["spec"]["template"]
    monitor = find(render(*MONITORING_API), "PodMonitor", "corescale-workers")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    port_names = {p["name"] for p in template["spec"]["containers"][0]["ports"]}
    assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
    assert set(monitor["spec"]["podTargetLabels"]) <= template["metadata"]["labels"].keys()
    scoped = find(
        render(*MONITORING_API, "--set-json", 'watchNamespaces=["team-a","team-b"]'),
        "PodMonitor",
        "corescale-workers",
    )
    assert scoped["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
