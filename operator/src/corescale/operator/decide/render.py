"""Pure functions from a CoreCluster spec to the objects it should own.

Each function returns exactly the fields corescale has an opinion about, as
plain dicts ready for server-side apply: fields left out stay with their
Kubernetes defaults or with whoever else manages them, and a field removed
from here is removed from the cluster on the next apply.

Each mode has its own Deployment (``NAME-pods``, ``NAME-prefork``) with a
selector that includes the mode. Switching mode therefore starts the new
pods next to the old ones and removes the old Deployment only once the new
one is fully available (see plan.py), so capacity never drops during a
switch; the Service and the PodDisruptionBudget select by cluster name and
cover both during the handover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corescale.operator.api.names import (
    API_VERSION,
    CLUSTER_LABEL,
    DEFAULT_CONTAINER_ANNOTATION,
    KIND,
    MANAGED_BY,
    MODE_LABEL,
    POD_TEMPLATE_HASH_LABEL,
    WORKERS_ANNOTATION,
    WORKERS_PER_POD_ANNOTATION,
)
from corescale.operator.api.placement import HOSTNAME_KEY, Placement
from corescale.operator.api.spec import CoreClusterSpec

CONTAINER = "worker"
RUN_AS = 65532
TMP_SIZE = "64Mi"
GRACE_MARGIN_SECONDS = 5
"""Extra grace so that the kubelet's SIGKILL never lands before the worker's own timeout."""

Object = dict[str, Any]


@dataclass(frozen=True)
class Owner:
    """The CoreCluster that owns the rendered objects."""

    name: str
    namespace: str
    uid: str


def deployment_name(owner: Owner, mode: str) -> str:
    return f"{owner.name}-{mode}"


def selector(owner: Owner) -> str:
    """The pods' label selector as the scale subresource (and so the HPA) wants it."""
    return f"{CLUSTER_LABEL}={owner.name}"


def labels(owner: Owner) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "corescale",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        CLUSTER_LABEL: owner.name,
    }


def _metadata(owner: Owner, name: str, extra_labels: dict[str, str] | None = None) -> Object:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner) | (extra_labels or {}),
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def worker_args(spec: CoreClusterSpec) -> list[str]:
    """The worker's command line: the app, the mode and where to listen."""
    args = [spec.app] if spec.app else []
    if spec.mode == "pods":
        args += ["--mode", "single"]
    else:
        args += ["--mode", "prefork", "--workers", str(spec.workers_per_pod)]
    return [*args, "--bind", f"0.0.0.0:{spec.port}"]


def _env(spec: CoreClusterSpec) -> list[Object]:
    """The worker drains in its preStop sleep already, so its own drain delay is 0."""
    own = [
        {"name": "CORESCALE_DRAIN_DELAY", "value": "0"},
        {"name": "CORESCALE_SHUTDOWN_TIMEOUT", "value": str(spec.shutdown_timeout_seconds)},
    ]
    return own + [dict(entry) for entry in spec.env]


def _container(spec: CoreClusterSpec) -> Object:
    per_pod = spec.workers_per_pod
    memory = str(spec.memory * per_pod)
    probe_port = "http"
    container: Object = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["corescale-worker"],
        "args": worker_args(spec),
        "env": _env(spec),
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        # A worker that exits on a bad app says why on stderr; the kubelet
        # keeps its last lines as the termination message, which the status
        # then shows instead of only "back-off restarting failed container".
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {
            "requests": {"cpu": str(spec.cpu_request * per_pod), "memory": memory},
            "limits": {"cpu": str(spec.cpu * per_pod), "memory": memory},
        },
        # Startup allows a slow first import; readiness reacts within seconds
        # (a draining worker fails /readyz); liveness only restarts a hung worker.
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": probe_port},
            "periodSeconds": 1,
            "failureThreshold": 60,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": probe_port},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": probe_port},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if spec.drain_seconds:
        # The pod leaves the Service's endpoints as soon as it is terminating,
        # but kube-proxy and clients learn that a moment later: the worker keeps
        # serving through the sleep and only then receives SIGTERM.
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": spec.drain_seconds}}}
    return container


def topology_spread(owner: Owner, placement: Placement) -> list[Object]:
    """One constraint per topology key, counting the pods of this CoreCluster only.

    ``matchLabelKeys: [pod-template-hash]`` counts each ReplicaSet's pods
    apart, so a rolling update spreads its new pods evenly by themselves
    instead of around the old ones about to leave. ``nodeTaintsPolicy:
    Honor`` leaves out nodes the pods do not tolerate (a tainted pool of
    other workloads is no domain to spread over); nodes outside the
    nodeSelector and affinity are left out by the scheduler's default.
    """
    spread = placement.topology_spread
    return [
        {
            "maxSkew": spread.max_skew,
            "topologyKey": key,
            "whenUnsatisfiable": spread.when_unsatisfiable,
            "labelSelector": {"matchLabels": {CLUSTER_LABEL: owner.name}},
            "matchLabelKeys": [POD_TEMPLATE_HASH_LABEL],
            "nodeTaintsPolicy": "Honor",
        }
        for key in spread.topology_keys
    ]


def _spreads_softly_over_nodes(placement: Placement) -> bool:
    spread = placement.topology_spread
    return HOSTNAME_KEY in spread.topology_keys and spread.when_unsatisfiable == "ScheduleAnyway"


def _apart_on_nodes(owner: Owner) -> Object:
    """A strong preference for a node without a worker of this CoreCluster.

    A soft topology spread only scores nodes, and its zone term can outweigh
    its node term (an emptier zone beats an empty node), so 30 workers on 36
    nodes could still share one. This preference tips the score towards one
    worker per node wherever nodes suffice, and, being a preference, still
    schedules when they do not. A user's own ``affinity`` replaces it.
    """
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {CLUSTER_LABEL: owner.name}},
                        "topologyKey": HOSTNAME_KEY,
                    },
                }
            ]
        }
    }


def _placement(owner: Owner, placement: Placement) -> Object:
    """The pod spec's fields that say where the pods run and as whom; unset ones stay out."""
    fields: Object = {}
    if placement.node_selector:
        fields["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        fields["tolerations"] = [dict(t) for t in placement.tolerations]
    if placement.affinity:
        fields["affinity"] = dict(placement.affinity)
    elif _spreads_softly_over_nodes(placement):
        fields["affinity"] = _apart_on_nodes(owner)
    if placement.priority_class_name:
        fields["priorityClassName"] = placement.priority_class_name
    if placement.image_pull_secrets:
        fields["imagePullSecrets"] = [{"name": name} for name in placement.image_pull_secrets]
    if placement.service_account_name:
        fields["serviceAccountName"] = placement.service_account_name
    spread = topology_spread(owner, placement)
    if spread:
        fields["topologySpreadConstraints"] = spread
    return fields


def scrape_annotations(spec: CoreClusterSpec) -> dict[str, str]:
    """The conventional ``prometheus.io/*`` annotations that a plain Prometheus's
    pod discovery keeps (hack/cluster/prometheus.yaml, the README). Every pod
    serves its whole /metrics on the traffic port (docs/contract.md)."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(spec.port),
        "prometheus.io/path": "/metrics",
    }


def deployment(owner: Owner, spec: CoreClusterSpec) -> Object:
    """The Deployment that runs ``spec.replicas`` workers in ``spec.mode``.

    The user's pod labels and annotations come first and the operator's own
    last, so even a spec that slipped past validation cannot take a label
    the selectors rely on.
    """
    placement = spec.placement
    pod_labels = dict(placement.pod_labels) | labels(owner) | {MODE_LABEL: spec.mode}
    metadata = _metadata(owner, deployment_name(owner, spec.mode), {MODE_LABEL: spec.mode})
    metadata["annotations"] = {
        WORKERS_ANNOTATION: str(spec.workers),
        WORKERS_PER_POD_ANNOTATION: str(spec.workers_per_pod),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": spec.pods,
            "selector": {"matchLabels": {CLUSTER_LABEL: owner.name, MODE_LABEL: spec.mode}},
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": 180,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
            },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    # The user's annotations may override the scrape ones; the
                    # default container is the operator's.
                    "annotations": scrape_annotations(spec)
                    | dict(placement.pod_annotations)
                    | {DEFAULT_CONTAINER_ANNOTATION: CONTAINER},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": (
                        spec.drain_seconds + spec.shutdown_timeout_seconds + GRACE_MARGIN_SECONDS
                    ),
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [_container(spec)],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}}],
                    **_placement(owner, placement),
                },
            },
        },
    }


def service(owner: Owner, spec: CoreClusterSpec) -> Object:
    """One Service for the cluster; it selects the pods of both modes during a switch."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, owner.name),
        "spec": {
            "type": spec.service.type,
            "selector": {CLUSTER_LABEL: owner.name},
            "ports": [
                {"name": "http", "port": spec.service.port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def disruption_budget(owner: Owner) -> Object:
    """Voluntary disruptions (node drains) take one pod at a time.

    ``AlwaysAllow`` lets a drain evict pods that are not ready anyway, so a
    crash-looping CoreCluster never blocks node maintenance.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(owner, owner.name),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {CLUSTER_LABEL: owner.name}},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
