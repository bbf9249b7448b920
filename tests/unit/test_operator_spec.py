"""Parsing a CoreCluster spec: defaults, derived sizes and refusals."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from corescale.operator.api import fields, names, quantity, spec
from corescale.operator.api import placement as placement_fields

CRD = Path(__file__).parents[2] / "manifests" / "crd" / "corescale.io_coreclusters.yaml"


def test_empty_spec_gets_every_default() -> None:
    parsed = spec.parse({}, "corescale-worker:dev")
    assert parsed.image == "corescale-worker:dev"
    assert parsed.mode == "pods" and parsed.replicas == 1 and parsed.workers_per_pod == 1
    assert parsed.port == 8080
    assert str(parsed.cpu) == "1" and str(parsed.cpu_request) == "100m"
    assert str(parsed.memory) == "256Mi"
    assert parsed.service == spec.ServiceSpec("ClusterIP", 80)
    assert parsed.app is None and parsed.env == ()


def test_defaults_agree_with_the_crd() -> None:
    """The API server defaults with the CRD and the operator with spec.py: they must agree."""
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props = schema["properties"]["spec"]["properties"]
    parsed = spec.parse({}, "img")
    assert props["mode"]["default"] == parsed.mode
    assert props["replicas"]["default"] == parsed.replicas
    assert props["port"]["default"] == parsed.port
    assert quantity.parse(props["cpu"]["default"]) == parsed.cpu
    assert quantity.parse(props["cpuRequest"]["default"]) == parsed.cpu_request
    assert quantity.parse(props["memory"]["default"]) == parsed.memory
    assert props["drainSeconds"]["default"] == parsed.drain_seconds
    assert props["shutdownTimeoutSeconds"]["default"] == parsed.shutdown_timeout_seconds
    assert props["imagePullPolicy"]["default"] == parsed.image_pull_policy
    service = props["service"]["properties"]
    assert service["type"]["default"] == parsed.service.type
    assert service["port"]["default"] == parsed.service.port
    assert set(props["mode"]["enum"]) == set(spec.MODES)


def _spec_schema() -> dict[str, Any]:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props: dict[str, Any] = schema["properties"]["spec"]["properties"]
    return props


def _bounds(props: dict[str, Any], kind: str, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """minimum and maximum of every field of ``kind`` in the schema, by dotted path."""
    found: dict[str, tuple[Any, Any]] = {}
    for key, field in props.items():
        if field.get("type") == kind:
            found[prefix + key] = (field["minimum"], field["maximum"])
        elif field.get("type") == "object" and "properties" in field:
            found |= _bounds(field["properties"], kind, f"{prefix}{key}.")
    return found


def _refused_outside(bounds: dict[str, tuple[Any, Any]], step: float) -> None:
    """Each bound is admitted and one step past it is refused, naming the field."""
    for key, (low, high) in bounds.items():
        where: dict[str, Any] = {
            "mode": "prefork",
            "workersPerPod": 1,
            "autoscaling": {"maxReplicas": 1000},
        }
        *outer, name = key.split(".")
        target: dict[str, Any] = where
        for part in outer:
            target = target.setdefault(part, {})
        for value in (low, high):
            target[name] = value
            spec.parse(where, "img")
        for value in (low - step, high + step):
            target[name] = value
            with pytest.raises(fields.SpecError, match=name):
                spec.parse(where, "img")


def test_integer_bounds_agree_with_the_crd() -> None:
    """What the API server admits is what spec.parse admits, bound for bound."""
    assert _bounds(_spec_schema(), "integer") == fields.BOUNDS
    _refused_outside(fields.BOUNDS, 1)


def test_number_bounds_agree_with_the_crd() -> None:
    assert _bounds(_spec_schema(), "number") == fields.NUMBER_BOUNDS
    _refused_outside(fields.NUMBER_BOUNDS, 0.001)


def test_autoscaling_defaults_agree_with_the_crd() -> None:
    props = _spec_schema()["autoscaling"]["properties"]
    policy = spec.parse({"autoscaling": {"maxReplicas": 5}}, "img").autoscaling
    assert policy is not None
    assert props["minReplicas"]["default"] == policy.min_replicas
    assert props["targetInFlight"]["default"] == policy.target_in_flight
    assert props["tolerance"]["default"] == policy.tolerance
    assert props["scaleUp"]["properties"]["windowSeconds"]["default"] == policy.up_window
    assert props["scaleUp"]["properties"]["maxFactor"]["default"] == policy.up_max_factor
    down = props["scaleDown"]["properties"]
    assert down["stableWindowSeconds"]["default"] == policy.down_window
    assert down["periodSeconds"]["default"] == policy.down_period
    assert down["maxFactor"]["default"] == policy.down_max_factor


def test_autoscaling_refuses_min_above_max_and_needs_max() -> None:
    with pytest.raises(fields.SpecError, match="minReplicas must not be larger"):
        spec.parse({"autoscaling": {"minReplicas": 4, "maxReplicas": 3}}, "img")
    with pytest.raises(fields.SpecError, match="maxReplicas is required"):
        spec.parse({"autoscaling": {"minReplicas": 4}}, "img")
    assert spec.parse({}, "img").autoscaling is None


def test_enums_agree_with_the_crd() -> None:
    props = _spec_schema()
    assert props["mode"]["enum"] == list(spec.MODES)
    assert props["imagePullPolicy"]["enum"] == list(spec.PULL_POLICIES)
    assert props["service"]["properties"]["type"]["enum"] == list(spec.SERVICE_TYPES)


@pytest.mark.parametrize(
    ("replicas", "per_pod", "pods", "workers"),
    [(0, 2, 0, 0), (1, 4, 1, 4), (4, 2, 2, 4), (5, 2, 3, 6), (8, 4, 2, 8)],
)
def test_prefork_rounds_pods_up(replicas: int, per_pod: int, pods: int, workers: int) -> None:
    parsed = spec.parse({"mode": "prefork", "replicas": replicas, "workersPerPod": per_pod}, "i")
    assert (parsed.pods, parsed.workers) == (pods, workers)


def test_pods_mode_is_one_worker_per_pod() -> None:
    parsed = spec.parse({"replicas": 3}, "i")
    assert (parsed.pods, parsed.workers) == (3, 3)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"replicas": -1}, "spec.replicas"),
        ({"replicas": "3"}, "spec.replicas"),
        ({"mode": "threads"}, "spec.mode"),
        ({"workersPerPod": 2}, "spec.workersPerPod"),
        ({"mode": "prefork"}, "spec.workersPerPod"),
        ({"mode": "prefork", "workersPerPod": 0}, "spec.workersPerPod"),
        ({"port": 0}, "spec.port"),
        ({"port": 70000}, "spec.port"),
        ({"cpu": "lots"}, "spec.cpu"),
        ({"cpu": "0"}, "spec.cpu"),
        ({"memory": "1 GB"}, "spec.memory"),
        ({"cpuRequest": "2"}, "spec.cpuRequest"),
        ({"app": "no-colon"}, "spec.app"),
        ({"env": [{"name": "CORESCALE_MODE", "value": "x"}]}, "CORESCALE_MODE"),
        ({"env": [{"name": "A"}, {"name": "A"}]}, "A twice"),
        ({"service": {"type": "ExternalName"}}, "spec.service.type"),
        ({"service": {"port": 0}}, "spec.service.port"),
    ],
)
def test_invalid_specs_name_the_field(bad: dict[str, Any], field: str) -> None:
    with pytest.raises(fields.SpecError, match=field.replace(".", r"\.")):
        spec.parse(bad, "i")


@pytest.mark.parametrize("name", ["hello", "a", "web-2"])
def test_good_names(name: str) -> None:
    spec.check_name(name)


@pytest.mark.parametrize("name", ["2web", "web.v2", "Web", "x" * 56, "web-"])
def test_names_that_cannot_name_a_service(name: str) -> None:
    with pytest.raises(fields.SpecError, match=r"metadata\.name"):
        spec.check_name(name)


def test_a_service_type_the_operator_does_not_allow_is_refused() -> None:
    node_port = spec.parse({"service": {"type": "NodePort"}}, "i")
    assert spec.refused_service_type(node_port, ("ClusterIP", "NodePort")) is None
    refused = spec.refused_service_type(node_port, ("ClusterIP",))
    assert refused is not None and refused.startswith("spec.service.type NodePort is not allowed")
    assert spec.refused_service_type(spec.parse({}, "i"), ("ClusterIP",)) is None


def test_cpu_below_a_millicore_is_refused_not_rounded() -> None:
    with pytest.raises(fields.SpecError, match=r"spec.cpu must be at least 1m"):
        spec.parse({"cpu": "1n"}, "i")
    with pytest.raises(fields.SpecError, match=r"spec.cpuRequest must be at least 1m"):
        spec.parse({"cpu": "1", "cpuRequest": "500u"}, "i")
    assert str(spec.parse({"cpu": "1m", "cpuRequest": "1m"}, "i").cpu) == "1m"


def test_placement_defaults_spread_over_nodes_and_zones() -> None:
    placement = spec.parse({}, "img").placement
    assert placement == placement_fields.Placement()
    assert placement.topology_spread.topology_keys == (
        placement_fields.HOSTNAME_KEY,
        placement_fields.ZONE_KEY,
    )
    assert placement.topology_spread.when_unsatisfiable == "ScheduleAnyway"
    props = _spec_schema()["topologySpread"]["properties"]
    assert props["topologyKeys"]["default"] == list(placement_fields.DEFAULT_TOPOLOGY_KEYS)
    assert props["whenUnsatisfiable"]["default"] == placement.topology_spread.when_unsatisfiable
    assert props["maxSkew"]["default"] == placement.topology_spread.max_skew
    assert props["whenUnsatisfiable"]["enum"] == list(placement_fields.WHEN_UNSATISFIABLE)


def test_placement_is_parsed_as_given() -> None:
    placement = spec.parse(
        {
            "nodeSelector": {"pool": "web"},
            "tolerations": [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"x": 1}},
            "priorityClassName": "high",
            "imagePullSecrets": [{"name": "registry"}],
            "serviceAccountName": "web",
            "podLabels": {"team": "shop"},
            "podAnnotations": {"a": "b"},
            "topologySpread": {"whenUnsatisfiable": "DoNotSchedule", "topologyKeys": []},
        },
        "img",
    ).placement
    assert placement.node_selector == {"pool": "web"}
    assert placement.tolerations == ({"key": "pool", "operator": "Exists", "effect": "NoSchedule"},)
    assert placement.affinity == {"nodeAffinity": {"x": 1}}
    assert (placement.priority_class_name, placement.service_account_name) == ("high", "web")
    assert placement.image_pull_secrets == ("registry",)
    assert (placement.pod_labels, placement.pod_annotations) == ({"team": "shop"}, {"a": "b"})
    assert placement.topology_spread == placement_fields.TopologySpread("DoNotSchedule", 1, ())


def _cel_listed(rule: str) -> list[str]:
    """The quoted names a CEL rule lists."""
    return re.findall(r"'([^']+)'", rule)


def test_reserved_pod_labels_agree_with_the_crd() -> None:
    """The CEL rule and spec.py refuse the same labels and annotations."""
    props = _spec_schema()
    labels_rule = props["podLabels"]["x-kubernetes-validations"][0]["rule"]
    assert _cel_listed(labels_rule) == list(placement_fields.RESERVED_POD_LABELS)
    annotations_rule = props["podAnnotations"]["x-kubernetes-validations"][0]["rule"]
    assert _cel_listed(annotations_rule) == list(placement_fields.RESERVED_POD_ANNOTATIONS)
    for label in placement_fields.RESERVED_POD_LABELS:
        with pytest.raises(fields.SpecError, match=re.escape(label)):
            spec.parse({"podLabels": {label: "x"}}, "img")
    with pytest.raises(fields.SpecError, match="default-container"):
        spec.parse({"podAnnotations": {names.DEFAULT_CONTAINER_ANNOTATION: "x"}}, "img")


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"nodeSelector": {"a": 1}}, "nodeSelector"),
        ({"nodeSelector": ["a"]}, "nodeSelector"),
        ({"tolerations": ["a"]}, "tolerations"),
        ({"affinity": "a"}, "affinity"),
        ({"imagePullSecrets": [{}]}, "imagePullSecrets"),
        ({"serviceAccountName": ""}, "serviceAccountName"),
        ({"topologySpread": {"whenUnsatisfiable": "Never"}}, "whenUnsatisfiable"),
        ({"topologySpread": {"topologyKeys": ["a", "a"]}}, "topologyKeys"),
        ({"topologySpread": {"maxSkew": 0}}, "maxSkew"),
    ],
)
def test_bad_placement_is_refused(bad: dict[str, Any], field: str) -> None:
    with pytest.raises(fields.SpecError, match=field):
        spec.parse(bad, "img")
