"""Where a CoreCluster's worker pods may run and as whom: the placement
fields of the spec (node selector, tolerations, affinity, topology spread,
pod labels and annotations, pull secrets, service account), validated.

They are passed to the pod template as given, except the labels and
annotations the operator's own selectors rely on, which a user may not set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from corescale.operator.api import names
from corescale.operator.api.fields import BOUNDS, SpecError, choice, integer

WHEN_UNSATISFIABLE = ("ScheduleAnyway", "DoNotSchedule")
HOSTNAME_KEY = "kubernetes.io/hostname"
ZONE_KEY = "topology.kubernetes.io/zone"
DEFAULT_TOPOLOGY_KEYS = (HOSTNAME_KEY, ZONE_KEY)
RESERVED_POD_LABELS = (
    names.CLUSTER_LABEL,
    names.MODE_LABEL,
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
    names.POD_TEMPLATE_HASH_LABEL,
)
"""Pod labels the operator's selectors (and the Deployment controller's) rely on:
a user's value would move pods out of their Service, budget or ReplicaSet."""
RESERVED_POD_ANNOTATIONS = (names.DEFAULT_CONTAINER_ANNOTATION,)


@dataclass(frozen=True)
class TopologySpread:
    """How the workers spread over failure domains: by default evenly over nodes
    and zones, preferred rather than required, so that losing one node or one
    zone costs the smallest share of workers without leaving pods Pending where
    the domains are uneven."""

    when_unsatisfiable: str = "ScheduleAnyway"
    max_skew: int = 1
    topology_keys: tuple[str, ...] = DEFAULT_TOPOLOGY_KEYS


@dataclass(frozen=True)
class Placement:
    """Where the worker pods may run and as whom: passed to the pod template as given."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] | None = None
    priority_class_name: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    service_account_name: str | None = None
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    topology_spread: TopologySpread = TopologySpread()


def _strings(spec: Mapping[str, Any], key: str, reserved: tuple[str, ...] = ()) -> dict[str, str]:
    """A map of strings to strings, such as nodeSelector or podLabels."""
    raw = spec.get(key) or {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise SpecError(f"spec.{key} must map strings to strings, got {raw!r}")
    taken = sorted(set(raw) & set(reserved))
    if taken:
        raise SpecError(
            f"spec.{key} must not set {', '.join(taken)}: the operator sets it and relies on it"
        )
    return dict(raw)


def _objects(spec: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], ...]:
    raw = spec.get(key) or []
    if not isinstance(raw, list) or not all(isinstance(item, Mapping) for item in raw):
        raise SpecError(f"spec.{key} must be a list of objects, got {raw!r}")
    return tuple(dict(item) for item in raw)


def _optional_name(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise SpecError(f"spec.{key} must be a non-empty name, got {value!r}")
    return value


def _topology_spread(spec: Mapping[str, Any]) -> TopologySpread:
    raw = spec.get("topologySpread") or {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"spec.topologySpread must be an object, got {raw!r}")
    where = "spec.topologySpread"
    keys = raw.get("topologyKeys", list(DEFAULT_TOPOLOGY_KEYS))
    if (
        not isinstance(keys, list)
        or not all(isinstance(k, str) and k for k in keys)
        or len(set(keys)) != len(keys)
    ):
        raise SpecError(f"{where}.topologyKeys must be a list of distinct keys, got {keys!r}")
    return TopologySpread(
        when_unsatisfiable=choice(
            raw, "whenUnsatisfiable", "ScheduleAnyway", WHEN_UNSATISFIABLE, where=where
        ),
        max_skew=integer(raw, "maxSkew", 1, *BOUNDS["topologySpread.maxSkew"], where=where),
        topology_keys=tuple(keys),
    )


def parse(spec: Mapping[str, Any]) -> Placement:
    affinity = spec.get("affinity")
    if affinity is not None and not isinstance(affinity, Mapping):
        raise SpecError(f"spec.affinity must be an object, got {affinity!r}")
    secrets = _objects(spec, "imagePullSecrets")
    if not all(isinstance(s.get("name"), str) and s["name"] for s in secrets):
        raise SpecError("spec.imagePullSecrets entries need a name")
    return Placement(
        node_selector=_strings(spec, "nodeSelector"),
        tolerations=_objects(spec, "tolerations"),
        affinity=dict(affinity) if affinity else None,
        priority_class_name=_optional_name(spec, "priorityClassName"),
        image_pull_secrets=tuple(s["name"] for s in secrets),
        service_account_name=_optional_name(spec, "serviceAccountName"),
        pod_labels=_strings(spec, "podLabels", RESERVED_POD_LABELS),
        pod_annotations=_strings(spec, "podAnnotations", RESERVED_POD_ANNOTATIONS),
        topology_spread=_topology_spread(spec),
    )
