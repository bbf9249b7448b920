"""The operator's settings, read from the environment once at startup.

Everything that differs between deployments of the operator (which image the
workers run, which namespaces are watched, how it logs, how several replicas
agree on one active instance) comes from ``CORESCALE_*`` variables, so the
Helm chart and the plain manifests configure it the same way and nothing is
read from files or flags that a chart would have to template twice.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass

from corescale.operator.api.spec import SERVICE_TYPES

DEFAULT_WORKER_IMAGE = "corescale-worker:dev"
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_PEERING_LIFETIME = 10
"""kopf's own default is 60 s: a minute without reconciling after an unclean exit."""
MIN_PEERING_LIFETIME = 5


class SettingsError(ValueError):
    """A ``CORESCALE_*`` variable has a value the operator cannot use."""


@dataclass(frozen=True)
class Settings:
    """What the operator needs to know about its own deployment."""

    worker_image: str
    """Image for CoreClusters that leave ``spec.image`` empty."""
    namespaces: tuple[str, ...]
    """Namespaces to watch; empty means every namespace (cluster-wide)."""
    log_format: str
    log_level: str
    peering: str
    """Name of the kopf peering object; empty runs standalone (no peering)."""
    priority: int
    """Peering priority: the live instance with the highest one is active."""
    peering_lifetime: int
    """Seconds a peer's record counts as alive after its last keepalive. A
    standby takes over from an active instance that died without a word
    (SIGKILL, node loss) once this has passed; kopf renews the record every
    ``lifetime - 5..10`` seconds (at least 1), so it must exceed the API's
    worst round trip and the clock skew between nodes."""
    liveness: str
    """HOST:PORT of the liveness endpoint (``/healthz``); empty disables it."""
    metrics: str
    """HOST:PORT of the operator's own Prometheus endpoint (``/metrics``); empty
    disables it. A port apart from the liveness endpoint's, as controller-runtime
    operators keep them (8080 metrics, 8081 probes)."""
    resync_seconds: float
    """How often an apply the API server refused (RBAC, quota, admission) is retried."""
    service_types: tuple[str, ...] = ("ClusterIP",)
    """The Service types CoreClusters may request. Creating a CoreCluster must not
    let a user open a node port or a load balancer that the cluster's RBAC
    would not let her create herself; an admin allows more here."""

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def liveness_url(self) -> str | None:
        return f"http://{self.liveness}/healthz" if self.liveness else None


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, default).strip().lower() or default
    if value not in allowed:
        raise SettingsError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: must be at least {minimum:g}")
    return value


def _priority(env: Mapping[str, str]) -> int:
    """An explicit priority, or a random one.

    kopf pauses *every* instance when two live peers share a priority, so
    identical replicas of the operator's Deployment must not all default to
    the same number: a random one makes exactly one of them active.
    """
    raw = env.get("CORESCALE_PEERING_PRIORITY", "").strip()
    if not raw:
        return random.randint(1, 1_000_000)
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"CORESCALE_PEERING_PRIORITY={raw!r}: expected an integer") from None


def _lifetime(env: Mapping[str, str]) -> int:
    value = _number(
        env, "CORESCALE_PEERING_LIFETIME", DEFAULT_PEERING_LIFETIME, MIN_PEERING_LIFETIME
    )
    if value != int(value):
        raise SettingsError(f"CORESCALE_PEERING_LIFETIME={value:g}: expected whole seconds")
    return int(value)


def _service_types(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("CORESCALE_SERVICE_TYPES", "").strip() or "ClusterIP"
    wanted = tuple(sorted({part.strip() for part in raw.split(",") if part.strip()}))
    unknown = [kind for kind in wanted if kind not in SERVICE_TYPES]
    if unknown or not wanted:
        raise SettingsError(
            f"CORESCALE_SERVICE_TYPES={raw!r}: expected a comma-separated list of "
            f"{', '.join(SERVICE_TYPES)}"
        )
    return wanted


def _address(env: Mapping[str, str], name: str, default: str) -> str:
    """``HOST:PORT`` (empty allowed: off); a wrong one fails at startup, not at bind time."""
    value = env.get(name, default).strip()
    if not value:
        return ""
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{name}={value!r}: expected HOST:PORT (or empty to disable)")
    return value


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    namespaces = tuple(
        sorted({ns.strip() for ns in env.get("CORESCALE_NAMESPACES", "").split(",") if ns.strip()})
    )
    return Settings(
        worker_image=env.get("CORESCALE_WORKER_IMAGE", "").strip() or DEFAULT_WORKER_IMAGE,
        namespaces=namespaces,
        log_format=_choice(env, "CORESCALE_LOG_FORMAT", "text", LOG_FORMATS),
        log_level=_choice(env, "CORESCALE_LOG_LEVEL", "info", LOG_LEVELS),
        peering=env.get("CORESCALE_PEERING", "corescale").strip(),
        priority=_priority(env),
        peering_lifetime=_lifetime(env),
        liveness=env.get("CORESCALE_LIVENESS", "0.0.0.0:8081").strip(),
        metrics=_address(env, "CORESCALE_METRICS", "0.0.0.0:8080"),
        resync_seconds=_number(env, "CORESCALE_RESYNC_SECONDS", 60.0, 1.0),
        service_types=_service_types(env),
    )
