"""A CoreCluster's spec as a typed, validated, defaulted object.

The API server already defaults and validates with the CRD's schema, but the
operator cannot rely on that alone: objects stored before a schema change,
or a CRD installed by hand without the rules, would otherwise reach the
renderer with holes in them. Parsing once into a frozen dataclass also keeps
every other module free of ``dict.get`` chains.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from corescale.operator import names, quantity
from corescale.operator.autoscale import Policy

MODES = ("pods", "prefork")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
RESERVED_ENV = (
    "CORESCALE_APP",
    "CORESCALE_MODE",
    "CORESCALE_WORKERS",
    "CORESCALE_BIND",
    "CORESCALE_DRAIN_DELAY",
    "CORESCALE_SHUTDOWN_TIMEOUT",
)
# Inclusive bounds of the integer fields, by their path under spec. The CRD
# states the same as minimum and maximum, and a unit test compares the two.
BOUNDS: dict[str, tuple[int, int]] = {
    "replicas": (0, 1000),
    "workersPerPod": (1, 64),
    "port": (1, 65535),
    "drainSeconds": (0, 300),
    "shutdownTimeoutSeconds": (1, 3600),
    "service.port": (1, 65535),
    "autoscaling.minReplicas": (1, 1000),
    "autoscaling.maxReplicas": (1, 1000),
    "autoscaling.scaleUp.windowSeconds": (1, 60),
    "autoscaling.scaleDown.stableWindowSeconds": (1, 3600),
    "autoscaling.scaleDown.periodSeconds": (1, 3600),
    "topologySpread.maxSkew": (1, 1000),
}
# The same for the fields that take any number.
NUMBER_BOUNDS: dict[str, tuple[float, float]] = {
    "autoscaling.targetInFlight": (0.01, 10000),
    "autoscaling.tolerance": (0, 0.5),
    "autoscaling.scaleUp.maxFactor": (1, 100),
    "autoscaling.scaleDown.maxFactor": (1, 100),
}
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
_APP = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$", re.ASCII)
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 55


class SpecError(ValueError):
    """A spec that cannot work however often it is retried."""


@dataclass(frozen=True)
class ServiceSpec:
    type: str = "ClusterIP"
    port: int = 80


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


@dataclass(frozen=True)
class CoreClusterSpec:
    """What the user asked for, with every default filled in."""

    image: str
    image_pull_policy: str = "IfNotPresent"
    app: str | None = None
    mode: str = "pods"
    replicas: int = 1
    workers_per_pod: int = 1
    port: int = 8080
    cpu: quantity.Quantity = field(default_factory=lambda: quantity.parse("1"))
    cpu_request: quantity.Quantity = field(default_factory=lambda: quantity.parse("100m"))
    memory: quantity.Quantity = field(default_factory=lambda: quantity.parse("256Mi"))
    drain_seconds: int = 5
    shutdown_timeout_seconds: int = 20
    env: tuple[Mapping[str, Any], ...] = ()
    service: ServiceSpec = ServiceSpec()
    autoscaling: Policy | None = None
    """Set when the operator decides the worker count from the load."""
    placement: Placement = Placement()

    @property
    def pods(self) -> int:
        """Pods needed for ``replicas`` workers: the last prefork pod may be partly spare."""
        return math.ceil(self.replicas / self.workers_per_pod)

    @property
    def workers(self) -> int:
        """Worker processes that will actually run (``pods * workers_per_pod``)."""
        return self.pods * self.workers_per_pod


def _integer(
    spec: Mapping[str, Any], key: str, default: int, low: int, high: int, *, where: str = "spec"
) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"{where}.{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def _number(spec: Mapping[str, Any], path: str, default: float) -> float:
    """A number field under ``spec``, by its path in NUMBER_BOUNDS."""
    low, high = NUMBER_BOUNDS[path]
    value = spec.get(path.rsplit(".", 1)[-1], default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SpecError(f"spec.{path} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _choice(
    spec: Mapping[str, Any],
    key: str,
    default: str,
    allowed: tuple[str, ...],
    *,
    where: str = "spec",
) -> str:
    value = spec.get(key, default)
    if value not in allowed:
        raise SpecError(f"{where}.{key} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _positive(spec: Mapping[str, Any], key: str, default: str) -> quantity.Quantity:
    raw = spec.get(key, default)
    try:
        parsed = quantity.parse(raw)
    except (quantity.QuantityError, TypeError):
        raise SpecError(f"spec.{key} must be a quantity such as 1 or 500m, got {raw!r}") from None
    if parsed.value <= 0:
        raise SpecError(f"spec.{key} must be positive, got {raw!r}")
    return parsed


def _millicores(spec: Mapping[str, Any], key: str, default: str) -> quantity.Quantity:
    """A CPU quantity: Kubernetes counts CPU in millicores, so less than 1m
    would be rounded up to 1m behind the user's back."""
    parsed = _positive(spec, key, default)
    if parsed.value < Fraction(1, 1000):
        raise SpecError(f"spec.{key} must be at least 1m, got {spec.get(key)!r}")
    return parsed


def _env(spec: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    entries = spec.get("env") or []
    names: set[str] = set()
    for entry in entries:
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or not name:
            raise SpecError(f"spec.env entries need a name, got {entry!r}")
        if name in RESERVED_ENV:
            raise SpecError(f"spec.env must not set {name}: the operator sets it from the spec")
        if name in names:
            raise SpecError(f"spec.env sets {name} twice")
        names.add(name)
    return tuple(dict(entry) for entry in entries)


def _autoscaling(spec: Mapping[str, Any]) -> Policy | None:
    raw = spec.get("autoscaling")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SpecError(f"spec.autoscaling must be an object, got {raw!r}")
    if "maxReplicas" not in raw:
        raise SpecError("spec.autoscaling.maxReplicas is required")
    up, down = raw.get("scaleUp") or {}, raw.get("scaleDown") or {}

    def integer(where: Mapping[str, Any], path: str, default: int) -> int:
        *outer, key = path.split(".")
        return _integer(where, key, default, *BOUNDS[path], where=".".join(["spec", *outer]))

    low = integer(raw, "autoscaling.minReplicas", 1)
    high = integer(raw, "autoscaling.maxReplicas", 10)
    if low > high:
        raise SpecError(
            "spec.autoscaling.minReplicas must not be larger than spec.autoscaling.maxReplicas"
        )
    return Policy(
        min_replicas=low,
        max_replicas=high,
        target_in_flight=_number(raw, "autoscaling.targetInFlight", 4),
        tolerance=_number(raw, "autoscaling.tolerance", 0.1),
        up_window=integer(up, "autoscaling.scaleUp.windowSeconds", 2),
        up_max_factor=_number(up, "autoscaling.scaleUp.maxFactor", 4),
        down_window=integer(down, "autoscaling.scaleDown.stableWindowSeconds", 60),
        down_period=integer(down, "autoscaling.scaleDown.periodSeconds", 10),
        down_max_factor=_number(down, "autoscaling.scaleDown.maxFactor", 2),
    )


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
        when_unsatisfiable=_choice(
            raw, "whenUnsatisfiable", "ScheduleAnyway", WHEN_UNSATISFIABLE, where=where
        ),
        max_skew=_integer(raw, "maxSkew", 1, *BOUNDS["topologySpread.maxSkew"], where=where),
        topology_keys=tuple(keys),
    )


def _placement(spec: Mapping[str, Any]) -> Placement:
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


def refused_service_type(wanted: CoreClusterSpec, allowed: tuple[str, ...]) -> str | None:
    """Why the operator will not create the Service ``wanted`` asks for, if it will not.

    A CoreCluster's Service is created with the operator's rights, not its
    author's: only the types the operator's admin allowed are applied.
    """
    if wanted.service.type in allowed:
        return None
    return (
        f"spec.service.type {wanted.service.type} is not allowed by the operator "
        f"(CORESCALE_SERVICE_TYPES: {', '.join(allowed)}); nothing is applied"
    )


def check_name(name: str) -> None:
    """The CoreCluster's name becomes the Service's name, so it must be a DNS-1035 label."""
    if not _NAME.match(name) or len(name) > MAX_NAME:
        raise SpecError(
            f"metadata.name {name!r} must be a DNS-1035 label of at most {MAX_NAME} characters"
        )


def parse(spec: Mapping[str, Any] | None, default_image: str) -> CoreClusterSpec:
    """Validate and default ``spec``; ``default_image`` fills an empty ``spec.image``."""
    spec = spec or {}
    mode = _choice(spec, "mode", "pods", MODES)
    if mode == "pods":
        workers_per_pod = _integer(spec, "workersPerPod", 1, 1, 1)
    elif "workersPerPod" not in spec:
        raise SpecError("spec.workersPerPod is required in prefork mode")
    else:
        workers_per_pod = _integer(spec, "workersPerPod", 1, *BOUNDS["workersPerPod"])
    app = spec.get("app")
    if app is not None and (not isinstance(app, str) or not _APP.match(app)):
        raise SpecError(f"spec.app must be module:factory, got {app!r}")
    cpu = _millicores(spec, "cpu", "1")
    cpu_request = _millicores(spec, "cpuRequest", "100m")
    if cpu_request.value > cpu.value:
        raise SpecError("spec.cpuRequest must not be larger than spec.cpu")
    service = spec.get("service") or {}
    return CoreClusterSpec(
        image=str(spec.get("image") or default_image),
        image_pull_policy=_choice(spec, "imagePullPolicy", "IfNotPresent", PULL_POLICIES),
        app=app,
        mode=mode,
        replicas=_integer(spec, "replicas", 1, *BOUNDS["replicas"]),
        workers_per_pod=workers_per_pod,
        port=_integer(spec, "port", 8080, *BOUNDS["port"]),
        cpu=cpu,
        cpu_request=cpu_request,
        memory=_positive(spec, "memory", "256Mi"),
        drain_seconds=_integer(spec, "drainSeconds", 5, *BOUNDS["drainSeconds"]),
        shutdown_timeout_seconds=_integer(
            spec, "shutdownTimeoutSeconds", 20, *BOUNDS["shutdownTimeoutSeconds"]
        ),
        env=_env(spec),
        service=ServiceSpec(
            type=_choice(service, "type", "ClusterIP", SERVICE_TYPES, where="spec.service"),
            port=_integer(service, "port", 80, *BOUNDS["service.port"], where="spec.service"),
        ),
        autoscaling=_autoscaling(spec),
        placement=_placement(spec),
    )
