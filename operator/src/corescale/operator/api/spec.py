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

from corescale.operator.api import placement, quantity
from corescale.operator.api.fields import BOUNDS, SpecError, choice, integer, number
from corescale.operator.api.placement import Placement

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
_APP = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$", re.ASCII)
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 55


@dataclass(frozen=True)
class Policy:
    """``spec.autoscaling`` with every default filled in."""

    min_replicas: int = 1
    max_replicas: int = 10
    target_in_flight: float = 4.0
    tolerance: float = 0.1
    up_window: float = 2.0
    up_max_factor: float = 4.0
    down_window: float = 60.0
    down_period: float = 10.0
    down_max_factor: float = 2.0


@dataclass(frozen=True)
class ServiceSpec:
    type: str = "ClusterIP"
    port: int = 80


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
    placement: Placement = field(default_factory=Placement)

    @property
    def pods(self) -> int:
        """Pods needed for ``replicas`` workers: the last prefork pod may be partly spare."""
        return math.ceil(self.replicas / self.workers_per_pod)

    @property
    def workers(self) -> int:
        """Worker processes that will actually run (``pods * workers_per_pod``)."""
        return self.pods * self.workers_per_pod


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

    def bounded(where: Mapping[str, Any], path: str, default: int) -> int:
        *outer, key = path.split(".")
        return integer(where, key, default, *BOUNDS[path], where=".".join(["spec", *outer]))

    low = bounded(raw, "autoscaling.minReplicas", 1)
    high = bounded(raw, "autoscaling.maxReplicas", 10)
    if low > high:
        raise SpecError(
            "spec.autoscaling.minReplicas must not be larger than spec.autoscaling.maxReplicas"
        )
    return Policy(
        min_replicas=low,
        max_replicas=high,
        target_in_flight=number(raw, "autoscaling.targetInFlight", 4),
        tolerance=number(raw, "autoscaling.tolerance", 0.1),
        up_window=bounded(up, "autoscaling.scaleUp.windowSeconds", 2),
        up_max_factor=number(up, "autoscaling.scaleUp.maxFactor", 4),
        down_window=bounded(down, "autoscaling.scaleDown.stableWindowSeconds", 60),
        down_period=bounded(down, "autoscaling.scaleDown.periodSeconds", 10),
        down_max_factor=number(down, "autoscaling.scaleDown.maxFactor", 2),
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
    mode = choice(spec, "mode", "pods", MODES)
    if mode == "pods":
        workers_per_pod = integer(spec, "workersPerPod", 1, 1, 1)
    elif "workersPerPod" not in spec:
        raise SpecError("spec.workersPerPod is required in prefork mode")
    else:
        workers_per_pod = integer(spec, "workersPerPod", 1, *BOUNDS["workersPerPod"])
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
        image_pull_policy=choice(spec, "imagePullPolicy", "IfNotPresent", PULL_POLICIES),
        app=app,
        mode=mode,
        replicas=integer(spec, "replicas", 1, *BOUNDS["replicas"]),
        workers_per_pod=workers_per_pod,
        port=integer(spec, "port", 8080, *BOUNDS["port"]),
        cpu=cpu,
        cpu_request=cpu_request,
        memory=_positive(spec, "memory", "256Mi"),
        drain_seconds=integer(spec, "drainSeconds", 5, *BOUNDS["drainSeconds"]),
        shutdown_timeout_seconds=integer(
            spec, "shutdownTimeoutSeconds", 20, *BOUNDS["shutdownTimeoutSeconds"]
        ),
        env=_env(spec),
        service=ServiceSpec(
            type=choice(service, "type", "ClusterIP", SERVICE_TYPES, where="spec.service"),
            port=integer(service, "port", 80, *BOUNDS["service.port"], where="spec.service"),
        ),
        autoscaling=_autoscaling(spec),
        placement=placement.parse(spec),
    )
