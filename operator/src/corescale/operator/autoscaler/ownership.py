"""Who owns the worker count while ``spec.autoscaling`` is set, and what the
status says about it: pure functions and a small memory.

The autoscaler's count lives in ``status.autoscaling.desiredReplicas``, not
in ``spec.replicas``. So a GitOps tool that applies the same manifest again,
``kubectl scale`` and a HorizontalPodAutoscaler aimed at the CoreCluster all
write a field the operator then ignores (and says so in an event), instead
of fighting the autoscaler over the Deployment. Turning autoscaling off hands
the count back to ``spec.replicas``.

A decision is remembered here from the moment it is made until the status
that holds it has been written, so the reconcile that applies it never reads
the older count from a lagging watch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from corescale.operator.api.spec import Policy

Key = tuple[str, str]


@dataclass(frozen=True)
class Record:
    """A decision that changed the count, as status.autoscaling.lastDecision says it."""

    time: str
    before: int
    after: int
    reason: str

    def as_status(self) -> dict[str, Any]:
        return {"time": self.time, "from": self.before, "to": self.after, "reason": self.reason}


@dataclass(frozen=True)
class Count:
    """The worker count one reconcile runs, and who set it."""

    replicas: int
    scaled_by: str
    """Who changed the count last, for the scaling event."""
    ignored: str | None = None
    """A warning: spec.replicas changed while the autoscaler owns the count."""


def clamp(policy: Policy, replicas: int) -> int:
    return min(policy.max_replicas, max(policy.min_replicas, replicas))


class Decisions:
    """The autoscaler's latest count per CoreCluster, with the decision that set it."""

    def __init__(self) -> None:
        self._latest: dict[Key, tuple[int, Record | None, float | None]] = {}

    def decided(self, key: Key, replicas: int, record: Record | None, load: float | None) -> None:
        self._latest[key] = (replicas, record, load)

    def forget(self, key: Key) -> None:
        self._latest.pop(key, None)

    def replicas(
        self, key: Key, policy: Policy, spec_replicas: int, status: Mapping[str, Any]
    ) -> int:
        """The count to run: the newest decision, else the status's, else spec.replicas."""
        if key in self._latest:
            return clamp(policy, self._latest[key][0])
        stored = (status.get("autoscaling") or {}).get("desiredReplicas")
        if isinstance(stored, int) and not isinstance(stored, bool):
            return clamp(policy, stored)
        return clamp(policy, spec_replicas)

    def count(
        self,
        key: Key,
        policy: Policy | None,
        spec_replicas: int,
        status: Mapping[str, Any],
        scaled_by: str,
    ) -> Count:
        """The count to run: spec.replicas by ``scaled_by``, or the autoscaler's while
        ``policy`` is set (turning autoscaling off forgets its count)."""
        if policy is None:
            self.forget(key)
            return Count(spec_replicas, scaled_by)
        replicas = self.replicas(key, policy, spec_replicas, status)
        ignored = ignored_replicas(spec_replicas, status, replicas, scaled_by)
        return Count(replicas, self.reason(key) or "autoscaler", ignored)

    def reason(self, key: Key) -> str | None:
        """Why the count last changed, for the event that reports the scaling."""
        record = self._latest.get(key, (0, None, None))[1]
        return record.reason if record else None

    def status(
        self, key: Key, replicas: int, spec_replicas: int, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """status.autoscaling to write, keeping the last decision the status has."""
        before: Mapping[str, Any] = status.get("autoscaling") or {}
        block: dict[str, Any] = {"desiredReplicas": replicas, "specReplicas": spec_replicas}
        _, record, load = self._latest.get(key, (replicas, None, None))
        if record is not None:
            block["lastDecision"] = record.as_status()
        elif "lastDecision" in before:
            block["lastDecision"] = dict(before["lastDecision"])
        if load is not None:
            block["observedInFlight"] = round(load, 2)
        elif "observedInFlight" in before:
            block["observedInFlight"] = before["observedInFlight"]
        return block


def ignored_replicas(
    spec_replicas: int, status: Mapping[str, Any], replicas: int, by: str
) -> str | None:
    """The warning for a spec.replicas that changed while autoscaling, if it did."""
    seen = (status.get("autoscaling") or {}).get("specReplicas")
    if seen is None or seen == spec_replicas:
        return None
    return (
        f"spec.replicas {seen} -> {spec_replicas} ({by}) is ignored while spec.autoscaling "
        f"is set: the autoscaler keeps {replicas} workers; change spec.autoscaling.minReplicas "
        "or maxReplicas instead, or remove spec.autoscaling to scale by hand"
    )
