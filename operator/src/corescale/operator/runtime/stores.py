"""What the operator keeps in memory of the CoreClusters and their children.

The CoreClusters come from kopf's watch, through the one event handler, into
:class:`CoreClusters`; each kind of child comes from a watch of the
operator's own (childwatch.py) into a :class:`~corescale.operator.runtime.childwatch.ChildStore`.
Both are plain objects built at startup, so every trigger of a reconcile (an
event, a child's change, a retry, the autoscaler) reads the same state
without needing kopf's index, which kopf hands to resource handlers only.
Of each object only what a reconcile reads is kept (``trimmed``, the
summaries in KINDS): a reconcile that finds nothing to change makes no API
call at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corescale.operator.api.names import (
    CHILDREN,
    CLUSTER_LABEL,
    MANAGED_BY,
    MODE_LABEL,
    SERVICE_NAME_LABEL,
    SLICE_MANAGER,
    SLICE_MANAGER_LABEL,
)
from corescale.operator.decide import plan, status
from corescale.operator.runtime.autoscaling import pod_summary
from corescale.operator.runtime.childwatch import Kind
from corescale.operator.runtime.own_writes import Key, Object

OURS = f"app.kubernetes.io/managed-by={MANAGED_BY},{CLUSTER_LABEL}"
"""The label selector of every child: the operator's labels, with a CoreCluster named."""
SLICES = f"{OURS},{SLICE_MANAGER_LABEL}={SLICE_MANAGER},{SERVICE_NAME_LABEL}"
"""The EndpointSlices of the CoreClusters' Services (the controller copies their labels)."""


def trimmed(body: Mapping[str, Any], keep_managed_fields: bool = False) -> dict[str, Any]:
    """A plain copy of a watched object, without the bulky managedFields (or,
    for a CoreCluster, with only the entries plan.replicas_changed_by reads)."""
    plain = {key: value for key, value in body.items() if key != "metadata"}
    metadata = dict(body.get("metadata", {}))
    managed = metadata.pop("managedFields", None)
    if keep_managed_fields and managed is not None:
        metadata["managedFields"] = plan.replica_owners(managed)
    return plain | {"metadata": metadata}


DEPLOYMENTS, SERVICES, BUDGETS, PODS, SLICES_ID = (
    "deployments",
    "services",
    "budgets",
    "pods",
    "endpointslices",
)
KINDS: dict[str, Kind] = {
    DEPLOYMENTS: Kind(*CHILDREN["deployments"], OURS, trimmed),
    SERVICES: Kind(*CHILDREN["services"], OURS, trimmed),
    BUDGETS: Kind(*CHILDREN["budgets"], OURS, trimmed),
    PODS: Kind(*CHILDREN["pods"], OURS, pod_summary),
    SLICES_ID: Kind(*CHILDREN["endpointslices"], SLICES, status.slice_summary),
}
"""What childwatch.py watches of the children, and keeps of each."""


class CoreClusters:
    """The CoreClusters as kopf's watch last showed them, trimmed, by (namespace, name)."""

    def __init__(self) -> None:
        self._bodies: dict[Key, dict[str, Any]] = {}

    def put(self, body: Mapping[str, Any]) -> Key:
        """Keep the newest copy of a CoreCluster; its key."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        self._bodies[key] = trimmed(body, keep_managed_fields=True)
        return key

    def remove(self, key: Key) -> None:
        self._bodies.pop(key, None)

    def get(self, key: Key) -> Object | None:
        return self._bodies.get(key)

    def items(self) -> list[tuple[Key, Object]]:
        return list(self._bodies.items())

    def __contains__(self, key: object) -> bool:
        return key in self._bodies

    def __len__(self) -> int:
        return len(self._bodies)


def observed(key: Key, children: Mapping[str, Mapping[Key, list[Any]]]) -> status.Observed:
    """The children of one CoreCluster, from the stores by their ids (KINDS)."""
    name = key[1]
    deployments = {
        d["metadata"]["labels"].get(MODE_LABEL, ""): d
        for d in children[DEPLOYMENTS].get(key, ())
        if d["metadata"]["name"].startswith(f"{name}-")
    }
    service = next(
        (s for s in children[SERVICES].get(key, ()) if s["metadata"]["name"] == name), None
    )
    budget = next(
        (b for b in children[BUDGETS].get(key, ()) if b["metadata"]["name"] == name), None
    )
    return status.Observed(
        deployments=deployments,
        service=service,
        disruption_budget=budget,
        pods=list(children[PODS].get(key, ())),
        endpoint_slices=[
            s for s in children[SLICES_ID].get(key, ()) if s["metadata"]["service"] == name
        ],
    )
