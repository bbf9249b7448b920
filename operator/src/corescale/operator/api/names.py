"""Every name corescale uses in the Kubernetes API, in one place.

The CoreCluster resource, the resources of its children as kopf watches them
and as kube.py addresses them, and the labels and annotations the operator
puts on what it owns. The CRD (manifests/crd) and the chart's RBAC state the
same names; the unit tests compare them.
"""

from __future__ import annotations

GROUP = "corescale.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "CoreCluster"
PLURAL = "coreclusters"

CORECLUSTERS = (GROUP, VERSION, PLURAL)
"""The CoreCluster resource as kopf names it: the one kind kopf watches."""
CHILDREN: dict[str, tuple[str, str]] = {
    "deployments": ("/apis/apps/v1", "deployments"),
    "services": ("/api/v1", "services"),
    "budgets": ("/apis/policy/v1", "poddisruptionbudgets"),
    "endpointslices": ("/apis/discovery.k8s.io/v1", "endpointslices"),
    "pods": ("/api/v1", "pods"),
}
"""What a CoreCluster owns or causes, as (the API group's path, the resource),
which childwatch.py lists and watches. The EndpointSlices of its Service
carry its labels too: the EndpointSlice controller copies the Service's
labels onto them."""
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
"""On an EndpointSlice: the Service it lists the endpoints of."""
SLICE_MANAGER_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "endpointslice-controller.k8s.io"
"""The EndpointSlice controller, the only writer of slices that kube-proxy's rules follow."""
PLURALS = {
    ("v1", "Service"): "services",
    ("apps/v1", "Deployment"): "deployments",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    (API_VERSION, KIND): PLURAL,
}
"""The resource in an API path, by (apiVersion, kind) of the objects the operator writes."""

CLUSTER_LABEL = "corescale.io/cluster"
"""On every child: the name of the CoreCluster it belongs to."""
MODE_LABEL = "corescale.io/mode"
"""On a Deployment and its pods: pods or prefork."""
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
"""On the pods: the container kubectl logs and exec pick."""
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
"""Set on each pod by the Deployment controller: one value per ReplicaSet."""
WORKERS_ANNOTATION = "corescale.io/workers"
WORKERS_PER_POD_ANNOTATION = "corescale.io/workers-per-pod"
APPLIED_ANNOTATION = "corescale.io/applied"
"""On each child: a digest of the body the operator last applied to it (plan.stamped)."""
MANAGED_BY = "corescale-operator"
"""The app.kubernetes.io/managed-by label of every child."""
FIELD_MANAGER = "corescale"
"""The server-side apply field manager of every write."""
