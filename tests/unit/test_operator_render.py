"""The objects a spec renders to: shape, sizes, security, ownership."""

from typing import Any

from corescale.operator.api import names, spec
from corescale.operator.decide import render

OWNER = render.Owner("hello", "shop", "0f0e-uid")


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return container


def test_pods_mode_is_one_single_worker_per_pod_at_one_cpu() -> None:
    deployment = render.deployment(OWNER, spec.parse({"replicas": 3}, "corescale-worker:dev"))
    assert deployment["metadata"]["name"] == "hello-pods"
    assert deployment["spec"]["replicas"] == 3
    container = _container(deployment)
    assert container["command"] == ["corescale-worker"]
    assert container["args"] == ["--mode", "single", "--bind", "0.0.0.0:8080"]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }
    assert deployment["metadata"]["annotations"][names.WORKERS_ANNOTATION] == "3"


def test_prefork_mode_packs_workers_per_pod() -> None:
    parsed = spec.parse(
        {
            "mode": "prefork",
            "replicas": 5,
            "workersPerPod": 2,
            "app": "shop.web:create_app",
            "port": 9000,
            "cpu": "500m",
        },
        "corescale-worker:dev",
    )
    deployment = render.deployment(OWNER, parsed)
    assert deployment["metadata"]["name"] == "hello-prefork"
    assert deployment["spec"]["replicas"] == 3
    container = _container(deployment)
    assert container["args"] == [
        "shop.web:create_app",
        "--mode",
        "prefork",
        "--workers",
        "2",
        "--bind",
        "0.0.0.0:9000",
    ]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}
    assert container["resources"]["requests"]["cpu"] == "200m"
    assert container["ports"][0]["containerPort"] == 9000
    assert deployment["metadata"]["annotations"] == {
        names.WORKERS_ANNOTATION: "6",
        names.WORKERS_PER_POD_ANNOTATION: "2",
    }


def test_selectors_keep_the_two_modes_apart_but_serve_both() -> None:
    pods = render.deployment(OWNER, spec.parse({}, "i"))
    prefork = render.deployment(OWNER, spec.parse({"mode": "prefork", "workersPerPod": 2}, "i"))
    service = render.service(OWNER, spec.parse({}, "i"))
    budget = render.disruption_budget(OWNER)
    assert pods["spec"]["selector"] != prefork["spec"]["selector"]
    for deployment in (pods, prefork):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert render.selector(OWNER) == "corescale.io/cluster=hello"


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    pod = render.deployment(OWNER, spec.parse({}, "i"))["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]
    assert pod["automountServiceAccountToken"] is False


def test_drain_matches_prestop_and_grace_period() -> None:
    parsed = spec.parse({"drainSeconds": 3, "shutdownTimeoutSeconds": 10}, "i")
    pod = render.deployment(OWNER, parsed)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 3}}}
    assert pod["terminationGracePeriodSeconds"] == 3 + 10 + render.GRACE_MARGIN_SECONDS
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CORESCALE_SHUTDOWN_TIMEOUT"] == "10"
    assert env["CORESCALE_DRAIN_DELAY"] == "0"
    no_drain = render.deployment(OWNER, spec.parse({"drainSeconds": 0}, "i"))
    assert "lifecycle" not in _container(no_drain)


def test_rollouts_never_take_a_pod_away_first() -> None:
    strategy = render.deployment(OWNER, spec.parse({}, "i"))["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_user_env_follows_the_operator_env() -> None:
    parsed = spec.parse(
        {
            "env": [
                {"name": "CORESCALE_ACCESS_LOG", "value": "1"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ]
        },
        "i",
    )
    env = _container(render.deployment(OWNER, parsed))["env"]
    assert [e["name"] for e in env][-2:] == ["CORESCALE_ACCESS_LOG", "TOKEN"]
    assert env[-1]["valueFrom"] == {"secretKeyRef": {"name": "s", "key": "k"}}


def test_everything_is_owned_by_the_corecluster() -> None:
    parsed = spec.parse({}, "i")
    for obj in (
        render.deployment(OWNER, parsed),
        render.service(OWNER, parsed),
        render.disruption_budget(OWNER),
    ):
        assert obj["metadata"]["namespace"] == "shop"
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "corescale.io/v1alpha1",
            "kind": "CoreCluster",
            "name": "hello",
            "uid": "0f0e-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }


def test_service_forwards_its_port_to_the_named_worker_port() -> None:
    parsed = spec.parse({"service": {"type": "NodePort", "port": 8000}}, "i")
    service = render.service(OWNER, parsed)
    assert service["metadata"]["name"] == "hello"
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]


def _pod(parsed: spec.CoreClusterSpec) -> dict[str, Any]:
    pod: dict[str, Any] = render.deployment(OWNER, parsed)["spec"]["template"]
    return pod


def test_workers_spread_over_nodes_and_zones_by_default() -> None:
    constraints = _pod(spec.parse({}, "i"))["spec"]["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in constraints] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]
    for constraint in constraints:
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        assert constraint["maxSkew"] == 1
        assert constraint["labelSelector"] == {"matchLabels": {names.CLUSTER_LABEL: "hello"}}
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]
        assert constraint["nodeTaintsPolicy"] == "Honor"


def test_strict_spread_and_no_spread() -> None:
    strict = _pod(spec.parse({"topologySpread": {"whenUnsatisfiable": "DoNotSchedule"}}, "i"))
    assert {c["whenUnsatisfiable"] for c in strict["spec"]["topologySpreadConstraints"]} == {
        "DoNotSchedule"
    }
    off = _pod(spec.parse({"topologySpread": {"topologyKeys": []}}, "i"))
    assert "topologySpreadConstraints" not in off["spec"]


def test_by_default_workers_prefer_a_node_of_their_own() -> None:
    """A soft node spread comes with a strong preference for an empty node;
    a strict spread, no node spread, or the user's own affinity go without."""
    preferred = _pod(spec.parse({}, "i"))["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert preferred == [
        {
            "weight": 100,
            "podAffinityTerm": {
                "labelSelector": {"matchLabels": {"corescale.io/cluster": "hello"}},
                "topologyKey": "kubernetes.io/hostname",
            },
        }
    ]
    strict = {"topologySpread": {"whenUnsatisfiable": "DoNotSchedule"}}
    assert "affinity" not in _pod(spec.parse(strict, "i"))["spec"]
    zones_only = {"topologySpread": {"topologyKeys": ["topology.kubernetes.io/zone"]}}
    assert "affinity" not in _pod(spec.parse(zones_only, "i"))["spec"]


def test_placement_reaches_the_pod_template_and_unset_fields_stay_out() -> None:
    plain = _pod(spec.parse({}, "i"))["spec"]
    for key in ("nodeSelector", "tolerations", "priorityClassName"):
        assert key not in plain
    assert "imagePullSecrets" not in plain and "serviceAccountName" not in plain
    toleration = {"key": "pool", "operator": "Exists", "effect": "NoSchedule"}
    affinity: dict[str, Any] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}
    }
    pod = _pod(
        spec.parse(
            {
                "nodeSelector": {"pool": "web"},
                "tolerations": [toleration],
                "affinity": affinity,
                "priorityClassName": "high",
                "imagePullSecrets": [{"name": "registry"}],
                "serviceAccountName": "web",
                "podLabels": {"team": "shop"},
                "podAnnotations": {"prometheus.io/scrape": "false", "team": "shop"},
            },
            "i",
        )
    )
    assert pod["spec"]["nodeSelector"] == {"pool": "web"}
    assert pod["spec"]["tolerations"] == [toleration]
    assert pod["spec"]["affinity"] == affinity
    assert pod["spec"]["priorityClassName"] == "high"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["spec"]["serviceAccountName"] == "web"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["metadata"]["labels"]["team"] == "shop"
    assert pod["metadata"]["labels"][names.CLUSTER_LABEL] == "hello"
    # The user's annotations override the scrape ones (here: not scraped).
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "false",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics",
        "team": "shop",
        names.DEFAULT_CONTAINER_ANNOTATION: "worker",
    }


def test_pods_carry_the_conventional_prometheus_annotations() -> None:
    """A plain Prometheus with the usual pod relabelling finds every worker pod
    and scrapes the port the worker serves /metrics on, in both modes."""
    for raw in ({"port": 9000}, {"mode": "prefork", "workersPerPod": 2, "replicas": 4}):
        parsed = spec.parse(raw, "corescale-worker:dev")
        template = render.deployment(OWNER, parsed)["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(parsed.port)
        assert annotations["prometheus.io/path"] == "/metrics"
        port = _container({"spec": {"template": template}})["ports"][0]["containerPort"]
        assert annotations["prometheus.io/port"] == str(port)
