"""What the operator's own writes returned, until its watches catch up.

The watches that feed a reconcile lag behind the operator's own writes by a
moment. A reconcile that ran on the lagging copy would act twice on its own
change (apply again, or report "scaled 2 -> 4" twice). So for a short while
after each write the object it returned is remembered, with the
resourceVersion the watch showed when the write was made. While the watch
still shows that version, it lags and the remembered copy is used; any other
version is the write itself or a later change, and the watch is trusted
again. resourceVersions are compared for equality only: Kubernetes says they
are opaque, so none is read as older or newer than another. After
MEMORY_SECONDS the watches are trusted in any case: they lag by far less.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from corescale.operator.api.spec import MODES
from corescale.operator.decide.status import Observed

Key = tuple[str, str]
"""A CoreCluster: (namespace, name)."""
Object = Mapping[str, Any]
MEMORY_SECONDS = 15.0
"""How long an own write may be newer than the watches: they lag by far less."""


def watched_child(watched: Observed, kind: str) -> Object | None:
    """The watched copy of one child, by the name OwnWrites knows it by."""
    if kind == "Service":
        return watched.service
    if kind == "PodDisruptionBudget":
        return watched.disruption_budget
    return watched.deployments.get(kind.removeprefix("Deployment/"))


def version(obj: Object | None) -> str:
    """An object's resourceVersion, as the opaque text it is ("" when missing)."""
    return str((obj or {}).get("metadata", {}).get("resourceVersion") or "")


class OwnWrites:
    """The children and statuses one operator wrote, per CoreCluster, for MEMORY_SECONDS.

    ``kind`` names one child of a CoreCluster: "Service",
    "PodDisruptionBudget", or "Deployment/<mode>" (one Deployment per mode).
    ``before`` is the resourceVersion the watch showed when the write was
    made ("" for a create: the watch showed nothing).
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, seconds: float = MEMORY_SECONDS
    ) -> None:
        self._clock = clock
        self._seconds = seconds
        self._applied: dict[tuple[str, str, str], tuple[float, str, Object]] = {}
        self._deleted: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._status: dict[Key, tuple[float, str, Object]] = {}

    def _recent(self, written_at: float) -> bool:
        return self._clock() - written_at <= self._seconds

    def applied(self, key: Key, kind: str, written: Object, before: str = "") -> None:
        """The operator applied a child and the API server returned ``written``."""
        self._applied[(*key, kind)] = (self._clock(), before, written)
        self._deleted.pop((*key, kind), None)

    def deleted(self, key: Key, kind: str, last_version: str) -> None:
        """The operator deleted a child it had seen at ``last_version``."""
        self._deleted[(*key, kind)] = (self._clock(), last_version)
        self._applied.pop((*key, kind), None)

    def status_written(self, key: Key, before: str, status: Object) -> None:
        """The operator wrote ``status`` over the CoreCluster it had read at ``before``."""
        self._status[key] = (self._clock(), before, status)

    def child(self, key: Key, kind: str, watched: Object | None) -> Object | None:
        """The watched child unless the watch still shows it from before the last own write
        (then the written one; None after a delete)."""
        ident = (*key, kind)
        deleted = self._deleted.get(ident)
        if deleted is not None and not self._recent(deleted[0]):
            del self._deleted[ident]
            deleted = None
        if watched is not None and deleted is not None and deleted[1] == version(watched):
            return None
        applied = self._applied.get(ident)
        if applied is None:
            return watched
        written_at, before, mine = applied
        lagging = version(watched) == before if watched is not None else True
        if self._recent(written_at) and lagging:
            return mine
        del self._applied[ident]
        return watched

    def merged(self, key: Key, watched: Observed) -> Observed:
        """The watched children with each one taken from the last own write where newer."""
        deployments = {}
        for mode in MODES:
            fresh = self.child(key, f"Deployment/{mode}", watched.deployments.get(mode))
            if fresh is not None:
                deployments[mode] = fresh
        return replace(
            watched,
            deployments=deployments,
            service=self.child(key, "Service", watched.service),
            disruption_budget=self.child(key, "PodDisruptionBudget", watched.disruption_budget),
        )

    def status(self, key: Key, body: Object) -> Object:
        """The CoreCluster's status: the one last written while ``body`` is from before it."""
        stored: Object = body.get("status") or {}
        written = self._status.get(key)
        if written is not None and self._recent(written[0]) and written[1] == version(body):
            return written[2]
        self._status.pop(key, None)
        return stored

    def forget(self, key: Key) -> None:
        """Drop everything about a CoreCluster that is gone."""
        self._status.pop(key, None)
        for memo in (self._applied, self._deleted):
            for ident in [ident for ident in memo if (ident[0], ident[1]) == key]:
                memo.pop(ident)
