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

from corescale.operator.names import (
    API_VERSION,
    CLUSTER_LABEL,
    KIND,
    MANAGED_BY,
    MODE_LABEL,
    WORKERS_ANNOTATION,
    WORKERS_PER_POD_ANNOTATION,
)
from corescale.operator.spec import CoreClusterSpec

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
    """The Deployment that runs ``spec.replicas`` workers in ``spec.mode``."""
    pod_labels = labels(owner) | {MODE_LABEL: spec.mode}
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
                    "annotations": scrape_annotations(spec)
                    | {"kubectl.kubernetes.io/default-container": CONTAINER},
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
