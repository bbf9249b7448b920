"""One reconcile of one CoreCluster: parse, plan, act, report.

Everything a handler does goes through :meth:`Reconciler.reconcile`, which
is level-based: it looks only at the spec and at the children as they are
now, never at what event woke it up, so a missed event, a restart of the
operator or two triggers at once all end in the same state. Calls for the
same CoreCluster are serialised and bursts of child events collapse into
one run.

The watches that feed it lag behind the operator's own writes by a moment;
:class:`~corescale.operator.runtime.own_writes.OwnWrites` remembers what those writes
returned, so that it never acts twice on its own change.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import kopf

from corescale.operator.api import fields, names, spec
from corescale.operator.autoscaler import ownership
from corescale.operator.decide import plan, render, status
from corescale.operator.process import metrics
from corescale.operator.process.settings import Settings
from corescale.operator.runtime.kube import Kube, KubeError
from corescale.operator.runtime.own_writes import Key, Object, OwnWrites, version

log = logging.getLogger(__name__)

Snapshot = Callable[[], tuple[Object | None, status.Observed]]
"""Reads the CoreCluster and its children from the watches, as they are now."""
TRANSIENT_DELAY = 5.0
"""Seconds before kopf retries after an API error that may pass by itself."""
CONCURRENT_RUNS = 16
"""Reconciles running at once, over all CoreClusters.

A thousand CoreClusters created together, or an operator restarting under
them, would otherwise start a thousand reconciles at once; each holds its
rendered children and the API's answers while the API server, queueing all
their calls, answers each one later. make bench-scale at 1,000 CoreClusters
created by four clients at once: RSS 515 MiB, most of it reached in that
first minute (docs/operator.md). Sixteen keep the API server busy without
a queue of the operator's own making.
"""


@dataclass(frozen=True)
class Outcome:
    """What a reconcile left behind, for the caller to retry or give up on."""

    error: str | None = None
    transient: bool = False
    """The same call may work in a moment (timeouts, conflicts, overload)."""
    invalid: bool = False
    """Only a new spec can help."""

    @property
    def result(self) -> str:
        """The ``result`` label of the reconcile counter."""
        if self.error is None:
            return "ok"
        return "invalid" if self.invalid else "transient" if self.transient else "error"

    @property
    def retry(self) -> bool:
        """Worth another run without a new event: it failed for a reason outside the spec."""
        return self.error is not None and not self.invalid


def _event(body: Object, kind: str, reason: str, message: str) -> None:
    """Queue an event on the CoreCluster; kopf posts it in the background.

    ``kopf.event`` rather than ``kopf.info``: the latter obeys the posting
    level, which is kept at WARNING to silence kopf's own per-handler chatter.
    """
    meta = body["metadata"]
    target = kopf.Body(
        {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
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
        self._running = asyncio.Semaphore(CONCURRENT_RUNS)
        self._own = OwnWrites()
        self._decisions = ownership.Decisions()
        self._closed = False

    async def close(self) -> None:
        """Stop reconciling (runs still queued return at once), then close the API client."""
        self._closed = True
        await self.kube.close()

    def forget(self, key: Key) -> None:
        """Drop what is remembered about a CoreCluster that is gone."""
        self._locks.pop(key, None)
        self._own.forget(key)
        self._decisions.forget(key)
        metrics.forget(key)

    def autoscaled(
        self, key: Key, replicas: int, record: ownership.Record, load: float | None
    ) -> None:
        """Take the autoscaler's new count; the next reconcile applies and records it."""
        self._decisions.decided(key, replicas, record, load)

    def autoscaled_replicas(self, key: Key, body: Object, wanted: spec.CoreClusterSpec) -> int:
        """The count the autoscaler last settled on for an autoscaled CoreCluster."""
        assert wanted.autoscaling is not None
        current = self._own.status(key, body)
        return self._decisions.replicas(key, wanted.autoscaling, wanted.replicas, current)

    def _observed(
        self, key: Key, owner: render.Owner, watched: status.Observed
    ) -> tuple[status.Observed, list[status.Problem]]:
        """The children this CoreCluster controls (the watched copies merged with own
        writes), and a problem for each labelled object with a child's name it does not."""
        return plan.split_ownership(owner, self._merged(key, watched))

    def _merged(self, key: Key, seen: status.Observed) -> status.Observed:
        deployments = {}
        for mode in spec.MODES:
            fresh = self._own.child(key, f"Deployment/{mode}", seen.deployments.get(mode))
            if fresh is not None:
                deployments[mode] = fresh
        return replace(
            seen,
            deployments=deployments,
            service=self._own.child(key, "Service", seen.service),
            disruption_budget=self._own.child(key, "PodDisruptionBudget", seen.disruption_budget),
        )

    async def reconcile_soon(self, key: Key, snapshot: Snapshot) -> Outcome:
        """Reconcile unless a run for this CoreCluster is already waiting.

        A waiting run will read the newest watch state when it starts, so the
        event that called this adds nothing: bursts of child events (a
        rollout updates a Deployment's status many times) cost one run.

        The snapshot is taken once the lock and a free run (CONCURRENT_RUNS)
        are had, never when the trigger fired: a run that waited behind
        another must see what that one did.
        """
        if key in self._queued:
            return Outcome()
        self._queued.add(key)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock, self._running:
            self._queued.discard(key)
            if self._closed:
                return Outcome()
            body, seen = snapshot()
            if body is None or body["metadata"].get("deletionTimestamp"):
                return Outcome()
            started = time.monotonic()
            try:
                outcome = await self._reconcile(key, body, seen)
            except KubeError as exc:
                metrics.reconciled(
                    Outcome(exc.message, exc.transient).result, time.monotonic() - started
                )
                raise
            metrics.reconciled(outcome.result, time.monotonic() - started)
            return outcome

    async def _reconcile(self, key: Key, body: Object, watched: status.Observed) -> Outcome:
        """``watched`` is the watches' view; it is merged with own writes before each use."""
        meta = body["metadata"]
        generation = int(meta.get("generation", 0))
        current = self._own.status(key, body)
        owner = render.Owner(meta["name"], meta["namespace"], meta["uid"])
        seen, conflicts = self._observed(key, owner, watched)
        try:
            spec.check_name(owner.name)
            wanted = spec.parse(body.get("spec"), self.settings.worker_image)
        except fields.SpecError as exc:
            new = status.invalid(generation, str(exc), current.get("conditions") or [], _now())
            await self._report(key, body, current, new, f"invalid spec: {exc}")
            return Outcome(str(exc), invalid=True)
        refused = spec.refused_service_type(wanted, self.settings.service_types)
        if refused:
            previous = current.get("conditions") or []
            new = status.invalid(generation, refused, previous, _now(), "ServiceTypeNotAllowed")
            await self._report(key, body, current, new, refused)
            return Outcome(refused, invalid=True)

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
        spec_replicas = wanted.replicas
        if wanted.autoscaling is not None:
            replicas = self._decisions.replicas(key, wanted.autoscaling, spec_replicas, current)
            ignored = ownership.ignored_replicas(spec_replicas, current, replicas, scaled_by)
            if ignored:
                log.warning("%s/%s: %s", *key, ignored)
                _event(body, "Warning", "ReplicasIgnored", ignored)
            scaled_by = self._decisions.reason(key) or "autoscaler"
            wanted = replace(wanted, replicas=replicas)
        else:
            self._decisions.forget(key)
        # Rendered once, for the plan and for the status (rolled out yet?).
        deployment = render.deployment(owner, wanted)
        todo = plan.actions(
            owner,
            wanted,
            seen,
            spec_changed=spec_changed,
            first=not current,
            scaled_by=scaled_by,
            deployment=deployment,
        )
        if any(action.recreates for action in todo) and not await self.kube.owner_exists(
            owner.namespace, owner.name, owner.uid
        ):
            # Children vanish together with their owner (garbage collection,
            # or the CRD deleted), before the watch has said the owner is gone.
            log.info("%s/%s: gone; not re-creating its children", *key)
            self.forget(key)
            return Outcome()
        problems = list(conflicts)
        failed: status.Problem | None = None
        transient = False
        for action in todo:
            try:
                await self._act(key, action)
            except KubeError as exc:
                if exc.terminating:
                    # Its namespace is going, and the CoreCluster with it:
                    # nothing to report, and events could not be posted.
                    log.debug("%s/%s: namespace terminating: %s", *key, exc.message)
                    self.forget(key)
                    return Outcome()
                if action.verb == "create" and exc.exists:
                    kind, name = action.body["kind"], action.body["metadata"]["name"]
                    problems.append(plan.not_ours(owner, kind, name))
                    continue
                failed = status.Problem("ApplyFailed", exc.message)
                transient = exc.transient
                break
            if action.message:
                log.info("%s/%s: %s", owner.namespace, owner.name, action.message)
                _event(body, "Normal", action.reason, action.message)
        if failed is not None:
            problems.append(failed)

        new = status.compute(
            owner,
            wanted,
            generation,
            self._observed(key, owner, watched)[0],
            previous=current.get("conditions") or [],
            now=_now(),
            errors=problems,
            deployment=deployment,
        )
        if wanted.autoscaling is not None:
            new["autoscaling"] = self._decisions.status(
                key, wanted.replicas, spec_replicas, current
            )
        elif "autoscaling" in current:
            new["autoscaling"] = None  # merge patch: removes it
        error = problems[0].message if problems else None
        await self._report(key, body, current, new, error, desired=wanted.workers)
        return Outcome(error, transient)

    async def _act(self, key: Key, action: plan.Action) -> None:
        body = action.body
        kind = body["kind"]
        if kind == "Deployment":
            kind = f"Deployment/{body['metadata']['labels'][names.MODE_LABEL]}"
        if action.verb == "delete":
            await self.kube.delete(body)
            self._own.deleted(key, kind, version(body))
        else:
            written = await (self.kube.create if action.verb == "create" else self.kube.apply)(body)
            written.get("metadata", {}).pop("managedFields", None)
            self._own.applied(key, kind, written)

    async def _report(
        self,
        key: Key,
        body: Object,
        current: Object,
        new: Object,
        error: str | None,
        *,
        desired: int | None = None,
    ) -> None:
        """Write the status if it changed; warn once per new problem.

        ``desired`` is the worker count the spec (or the autoscaler) asks
        for, unknown when the spec cannot be used.
        """
        metrics.corecluster(key, new["conditions"], desired, new.get("readyReplicas"))
        if status.differs(current, new):
            written = await self.kube.patch_status(key[0], key[1], new)
            if written is not None:
                self._own.status_written(key, version(written), new)
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
