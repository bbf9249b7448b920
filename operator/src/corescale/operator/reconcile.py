"""One reconcile of one CoreCluster: parse, plan, act, report.

Everything a handler does goes through :meth:`Reconciler.reconcile`, which
is level-based: it looks only at the spec and at the children as they are
now, never at what event woke it up, so a missed event, a restart of the
operator or two triggers at once all end in the same state. Calls for the
same CoreCluster are serialised and bursts of child events collapse into
one run.

The watches that feed it lag behind the operator's own writes by a moment.
To never act twice on its own change (or report "scaled 2 -> 4" twice), it
remembers the objects its writes returned and uses whichever copy of each
child is newer, by resourceVersion.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import kopf

from corescale.operator import plan, render, spec, status
from corescale.operator.kube import Kube, KubeError
from corescale.operator.settings import Settings

log = logging.getLogger(__name__)

Key = tuple[str, str]
Object = Mapping[str, Any]
Snapshot = Callable[[], tuple[Object | None, status.Observed]]
"""Reads the CoreCluster and its children from the watches, as they are now."""
TRANSIENT_DELAY = 5.0
"""Seconds before kopf retries after an API error that may pass by itself."""
MEMORY_SECONDS = 15.0
"""How long an own write may be newer than the watches: they lag by far less."""


@dataclass(frozen=True)
class Outcome:
    """What a reconcile left behind, for the caller to retry or give up on."""

    error: str | None = None
    transient: bool = False
    """The same call may work in a moment (timeouts, conflicts, overload)."""
    invalid: bool = False
    """Only a new spec can help."""


def _version(obj: Object | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion", "0"))
    except ValueError:
        return 0


def _fresh_enough(entry: tuple[float, Any] | None) -> Any:
    """An own write remembered for at most MEMORY_SECONDS, then the watches are trusted."""
    if entry is None or time.monotonic() - entry[0] > MEMORY_SECONDS:
        return None
    return entry[1]


def _event(body: Object, kind: str, reason: str, message: str) -> None:
    """Queue an event on the CoreCluster; kopf posts it in the background.

    ``kopf.event`` rather than ``kopf.info``: the latter obeys the posting
    level, which is kept at WARNING to silence kopf's own per-handler chatter.
    """
    meta = body["metadata"]
    target = kopf.Body(
        {
            "apiVersion": f"{render.GROUP}/{render.VERSION}",
            "kind": render.KIND,
            "metadata": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
        }
    )
    kopf.event(target, type=kind, reason=reason, message=message)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reconciler:
    """Serialises reconciles per CoreCluster and remembers its own latest writes."""

    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings
        self._locks: dict[Key, asyncio.Lock] = {}
        self._queued: set[Key] = set()
        self._written: dict[tuple[str, str, str], tuple[float, Object]] = {}
        self._deleted: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._status: dict[Key, tuple[float, Object]] = {}
        self._closed = False

    async def close(self) -> None:
        """Stop reconciling (runs still queued return at once), then close the API client."""
        self._closed = True
        await self.kube.close()

    def forget(self, key: Key) -> None:
        """Drop what is remembered about a CoreCluster that is gone."""
        self._locks.pop(key, None)
        self._status.pop(key, None)
        for memo in (self._written, self._deleted):
            for ident in [ident for ident in memo if (ident[0], ident[1]) == key]:
                memo.pop(ident)

    def _fresh(self, key: Key, kind: str, obj: Object | None) -> Object | None:
        ident = (*key, kind)
        mine: Object | None = _fresh_enough(self._written.get(ident))
        gone: int | None = _fresh_enough(self._deleted.get(ident))
        if obj is not None and gone is not None and gone >= _version(obj):
            return None
        if mine is None or (obj is not None and _version(obj) >= _version(mine)):
            self._written.pop(ident, None)
            return obj
        return mine

    def _observed(self, key: Key, seen: status.Observed) -> status.Observed:
        deployments = {}
        for mode in spec.MODES:
            fresh = self._fresh(key, f"Deployment/{mode}", seen.deployments.get(mode))
            if fresh is not None:
                deployments[mode] = fresh
        return replace(
            seen,
            deployments=deployments,
            service=self._fresh(key, "Service", seen.service),
            disruption_budget=self._fresh(key, "PodDisruptionBudget", seen.disruption_budget),
        )

    def _current_status(self, key: Key, body: Object) -> Object:
        stored: Object = body.get("status") or {}
        mine: Object | None = _fresh_enough(self._status.get(key))
        if mine is not None and mine.get("resourceVersion", 0) > _version(body):
            return mine["status"]  # type: ignore[no-any-return]
        self._status.pop(key, None)
        return stored

    async def reconcile_soon(self, key: Key, snapshot: Snapshot) -> Outcome:
        """Reconcile unless a run for this CoreCluster is already waiting.

        A waiting run will read the newest watch state when it starts, so the
        event that called this adds nothing: bursts of child events (a
        rollout updates a Deployment's status many times) cost one run.
        """
        if key in self._queued:
            return Outcome()
        self._queued.add(key)
        return await self.reconcile(key, snapshot, queued=True)

    async def reconcile(self, key: Key, snapshot: Snapshot, queued: bool = False) -> Outcome:
        """Reconcile one CoreCluster with the state ``snapshot`` returns once it is its turn.

        The snapshot is taken inside the lock, never when the trigger fired:
        a run that waited behind another must see what that one did.
        """
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if queued:
                self._queued.discard(key)
            if self._closed:
                return Outcome()
            body, seen = snapshot()
            if body is None or body["metadata"].get("deletionTimestamp"):
                return Outcome()
            return await self._reconcile(key, body, seen)

    async def _reconcile(self, key: Key, body: Object, watched: status.Observed) -> Outcome:
        """``watched`` is the watches' view; it is merged with own writes before each use."""
        meta = body["metadata"]
        generation = int(meta.get("generation", 0))
        current = self._current_status(key, body)
        seen = self._observed(key, watched)
        owner = render.Owner(meta["name"], meta["namespace"], meta["uid"])
        try:
            spec.check_name(owner.name)
            wanted = spec.parse(body.get("spec"), self.settings.worker_image)
        except spec.SpecError as exc:
            new = status.invalid(generation, str(exc), current.get("conditions") or [], _now())
            await self._report(key, body, current, new, f"invalid spec: {exc}")
            return Outcome(str(exc), invalid=True)

        log.debug(
            "%s/%s: reconcile generation %s (status %s); deployments %s",
            *key,
            generation,
            current.get("observedGeneration"),
            {
                mode: (d["metadata"].get("resourceVersion"), d.get("spec", {}).get("replicas"))
                for mode, d in seen.deployments.items()
            },
        )
        spec_changed = current.get("observedGeneration") != generation
        scaled_by = plan.replicas_changed_by(meta.get("managedFields") or [])
        todo = plan.actions(
            owner, wanted, seen, spec_changed=spec_changed, first=not current, scaled_by=scaled_by
        )
        if any(action.recreates for action in todo) and not await self.kube.owner_exists(
            owner.namespace, owner.name, owner.uid
        ):
            # Children vanish together with their owner (garbage collection,
            # or the CRD deleted), before the watch has said the owner is gone.
            log.info("%s/%s: gone; not re-creating its children", *key)
            self.forget(key)
            return Outcome()
        problem: status.Problem | None = None
        transient = False
        for action in todo:
            try:
                await self._act(key, action)
            except KubeError as exc:
                problem = status.Problem("ApplyFailed", exc.message)
                transient = exc.transient
                break
            if action.message:
                log.info("%s/%s: %s", owner.namespace, owner.name, action.message)
                _event(body, "Normal", action.reason, action.message)

        new = status.compute(
            owner,
            wanted,
            generation,
            self._observed(key, watched),
            previous=current.get("conditions") or [],
            now=_now(),
            error=problem,
        )
        await self._report(key, body, current, new, problem.message if problem else None)
        return Outcome(problem.message if problem else None, transient)

    async def _act(self, key: Key, action: plan.Action) -> None:
        body = action.body
        kind = body["kind"]
        if kind == "Deployment":
            kind = f"Deployment/{body['metadata']['labels'][render.MODE_LABEL]}"
        if action.verb == "delete":
            await self.kube.delete(body)
            self._deleted[(*key, kind)] = (time.monotonic(), _version(body))
            self._written.pop((*key, kind), None)
        else:
            written = await self.kube.apply(body)
            written.get("metadata", {}).pop("managedFields", None)
            self._written[(*key, kind)] = (time.monotonic(), written)
            self._deleted.pop((*key, kind), None)

    async def _report(
        self, key: Key, body: Object, current: Object, new: Object, error: str | None
    ) -> None:
        """Write the status if it changed; warn once per new problem."""
        if status.differs(current, new):
            written = await self.kube.patch_status(key[0], key[1], new)
            if written is not None:
                self._status[key] = (
                    time.monotonic(),
                    {"resourceVersion": _version(written), "status": new},
                )
        degraded = next(c for c in new["conditions"] if c["type"] == "Degraded")
        before: Object = next(
            (c for c in current.get("conditions") or [] if c.get("type") == "Degraded"), {}
        )
        if degraded["status"] == "True" and degraded["message"] != before.get("message"):
            text = error or degraded["message"]
            log.warning("%s/%s: %s", key[0], key[1], text)
            _event(body, "Warning", degraded["reason"], text)
        elif degraded["status"] == "False" and before.get("status") == "True":
            log.info("%s/%s: recovered: %s", key[0], key[1], degraded["message"])
            _event(body, "Normal", "Recovered", "no problem seen any more")
