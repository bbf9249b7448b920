"""Bounded fields of a CoreCluster's spec: the errors and the limits every
part of the spec's parser shares.

The bounds live here, once: the CRD states the same as minimum and maximum,
and a unit test compares the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SpecError(ValueError):
    """A spec that cannot work however often it is retried."""


# Inclusive bounds of the integer fields, by their path under spec.
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


def integer(
    spec: Mapping[str, Any], key: str, default: int, low: int, high: int, *, where: str = "spec"
) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"{where}.{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def number(spec: Mapping[str, Any], path: str, default: float) -> float:
    """A number field under ``spec``, by its path in NUMBER_BOUNDS."""
    low, high = NUMBER_BOUNDS[path]
    value = spec.get(path.rsplit(".", 1)[-1], default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SpecError(f"spec.{path} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def choice(
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
