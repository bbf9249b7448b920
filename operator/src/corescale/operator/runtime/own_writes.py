"""What the operator's own writes returned, until its watches catch up.

The watches that feed a reconcile lag behind the operator's own writes by a
moment. A reconcile that ran on the lagging copy would act twice on its own
change (apply again, or report "scaled 2 -> 4" twice). So for a short while
after each write the object it returned is remembered, and whichever copy is
newer by resourceVersion, the watched one or the remembered one, is used.
After MEMORY_SECONDS the watches are trusted again: they lag by far less.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

Key = tuple[str, str]
"""A CoreCluster: (namespace, name)."""
Object = Mapping[str, Any]
MEMORY_SECONDS = 15.0
"""How long an own write may be newer than the watches: they lag by far less."""


def version(obj: Object | None) -> int:
    """An object's resourceVersion as a number (0 when missing or not a number)."""
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion", "0"))
    except ValueError:
        return 0


class OwnWrites:
    """The children and statuses one operator wrote, per CoreCluster, for MEMORY_SECONDS.

    ``kind`` names one child of a CoreCluster: "Service",
    "PodDisruptionBudget", or "Deployment/<mode>" (one Deployment per mode).
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, seconds: float = MEMORY_SECONDS
    ) -> None:
        self._clock = clock
        self._seconds = seconds
        self._applied: dict[tuple[str, str, str], tuple[float, Object]] = {}
        self._deleted: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._status: dict[Key, tuple[float, int, Object]] = {}

    def _recent(self, written_at: float) -> bool:
        return self._clock() - written_at <= self._seconds

    def applied(self, key: Key, kind: str, written: Object) -> None:
        """The operator applied a child and the API server returned ``written``."""
        self._applied[(*key, kind)] = (self._clock(), written)
        self._deleted.pop((*key, kind), None)

    def deleted(self, key: Key, kind: str, last_version: int) -> None:
        """The operator deleted a child it had seen at ``last_version``."""
        self._deleted[(*key, kind)] = (self._clock(), last_version)
        self._applied.pop((*key, kind), None)

    def status_written(self, key: Key, written_version: int, status: Object) -> None:
        """The operator wrote ``status``; the CoreCluster is at ``written_version`` since."""
        self._status[key] = (self._clock(), written_version, status)

    def child(self, key: Key, kind: str, watched: Object | None) -> Object | None:
        """The newer of the watched child and the one last written; None if it is gone."""
        ident = (*key, kind)
        deleted = self._deleted.get(ident)
        if deleted is not None and not self._recent(deleted[0]):
            deleted = None
        if watched is not None and deleted is not None and deleted[1] >= version(watched):
            return None
        applied = self._applied.get(ident)
        mine = applied[1] if applied is not None and self._recent(applied[0]) else None
        if mine is None or (watched is not None and version(watched) >= version(mine)):
            self._applied.pop(ident, None)
            return watched
        return mine

    def status(self, key: Key, body: Object) -> Object:
        """The CoreCluster's status: the one last written if ``body`` is older than it."""
        stored: Object = body.get("status") or {}
        written = self._status.get(key)
        if written is not None and self._recent(written[0]) and written[1] > version(body):
            return written[2]
        self._status.pop(key, None)
        return stored

    def forget(self, key: Key) -> None:
        """Drop everything about a CoreCluster that is gone."""
        self._status.pop(key, None)
        for memo in (self._applied, self._deleted):
            for ident in [ident for ident in memo if (ident[0], ident[1]) == key]:
                memo.pop(ident)
