"""One reconcile of one CoreCluster: parse, decide, act, report.

Everything that wakes a reconcile goes through :meth:`Reconciler.reconcile_soon`,
which is level-based: it looks only at the spec and at the children as they
are now, never at what event woke it up, so a missed event, a restart of the
operator or two triggers at once all end in the same state. Calls for the
same CoreCluster are serialised and bursts of child events collapse into
one run.

Each run has four steps, each a method: :meth:`~Reconciler._parse` (the spec,
or why it cannot be used), :meth:`~Reconciler._decide` (the count to run, the
rendered Deployment and the actions, from the pure layers), :meth:`~Reconciler._act`
(the API calls, and what their answers mean) and :meth:`~Reconciler._report`
(the status, events and metrics).

The watches that feed it lag behind the operator's own writes by a moment;
:class:`~corescale.operator.runtime.own_writes.OwnWrites` remembers what those
writes returned, so that it never acts twice on its own change.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from corescale.operator.api import fields, names, spec
from corescale.operator.autoscaler import ownership
from corescale.operator.decide import plan, render, status
from corescale.operator.process import metrics
from corescale.operator.process.settings import Settings
from corescale.operator.runtime.events import Events
from corescale.operator.runtime.kube import Kube, KubeError
from corescale.operator.runtime.outcome import Outcome
from corescale.operator.runtime.own_writes import Key, Object, OwnWrites, version, watched_child

log = logging.getLogger(__name__)

Snapshot = Callable[[], tuple[Object | None, status.Observed]]
"""Reads the CoreCluster and its children from the watches, as they are now."""
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


@dataclass
class _Run:
    """What one reconcile has learnt so far, passed from step to step."""

    key: Key
    body: Object
    watched: status.Observed
    """The watches' view; merged with own writes before each use."""
    owner: render.Owner
    generation: int
    current: Object
    """The status, the one last written if the watch has not shown it yet."""
    problems: list[status.Problem] = field(default_factory=list)
    spec_replicas: int = 0
    """spec.replicas as written, beside the count the autoscaler may run instead."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reconciler:
    """Serialises reconciles per CoreCluster and remembers its own latest writes."""

    def __init__(self, kube: Kube, settings: Settings, events: Events) -> None:
        self.kube = kube
        self.settings = settings
        self.events = events
        self._locks: dict[Key, asyncio.Lock] = {}
        self._queued: set[Key] = set()
        self._running = asyncio.Semaphore(CONCURRENT_RUNS)
        self._own = OwnWrites()
        self._decisions = ownership.Decisions()
        self._closed = False

    def close(self) -> None:
        """Stop reconciling: runs still queued return at once."""
        self._closed = True

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
            body, watched = snapshot()
            if body is None or body["metadata"].get("deletionTimestamp"):
                return Outcome()
            started = time.monotonic()
            try:
                outcome = await self._reconcile(key, body, watched)
            except KubeError as exc:
                metrics.reconciled(Outcome.of(exc).result, time.monotonic() - started)
                raise
            metrics.reconciled(outcome.result, time.monotonic() - started)
            return outcome

    async def _reconcile(self, key: Key, body: Object, watched: status.Observed) -> Outcome:
        meta = body["metadata"]
        run = _Run(
            key,
            body,
            watched,
            render.Owner(meta["name"], meta["namespace"], meta["uid"]),
            int(meta.get("generation", 0)),
            self._own.status(key, body),
        )
        wanted = await self._parse(run)
        if isinstance(wanted, Outcome):
            return wanted
        wanted, deployment, todo = self._decide(run, wanted)
        if any(action.recreates for action in todo) and not await self.kube.owner_exists(
            run.owner.namespace, run.owner.name, run.owner.uid
        ):
            # Children vanish together with their owner (garbage collection,
            # or the CRD deleted), before the watch has said the owner is gone.
            log.info("%s/%s: gone; not re-creating its children", *key)
            self.forget(key)
            return Outcome()
        transient = await self._act(run, todo)
        if transient is None:
            return Outcome()  # the namespace is going: nothing to report
        new = status.compute(
            run.owner,
            wanted,
            run.generation,
            self._observed(run)[0],
            previous=run.current.get("conditions") or [],
            now=_now(),
            errors=run.problems,
            deployment=deployment,
        )
        if wanted.autoscaling is not None:
            new["autoscaling"] = self._decisions.status(
                key, wanted.replicas, run.spec_replicas, run.current
            )
        elif "autoscaling" in run.current:
            new["autoscaling"] = None  # merge patch: removes it
        error = run.problems[0].message if run.problems else None
        await self._report(run, new, error, desired=wanted.workers)
        return Outcome(error, transient)

    async def _parse(self, run: _Run) -> spec.CoreClusterSpec | Outcome:
        """The typed spec, or the Outcome of reporting why it cannot be used."""
        try:
            spec.check_name(run.owner.name)
            wanted = spec.parse(run.body.get("spec"), self.settings.worker_image)
        except fields.SpecError as exc:
            conditions = run.current.get("conditions") or []
            new = status.invalid(run.generation, str(exc), conditions, _now())
            await self._report(run, new, f"invalid spec: {exc}")
            return Outcome(str(exc), invalid=True)
        refused = spec.refused_service_type(wanted, self.settings.service_types)
        if refused:
            conditions = run.current.get("conditions") or []
            reason = "ServiceTypeNotAllowed"
            new = status.invalid(run.generation, refused, conditions, _now(), reason)
            await self._report(run, new, refused)
            return Outcome(refused, invalid=True)
        return wanted

    def _decide(
        self, run: _Run, wanted: spec.CoreClusterSpec
    ) -> tuple[spec.CoreClusterSpec, Object, list[plan.Action]]:
        """The spec with the count to run, its Deployment, and the actions that reach them."""
        meta = run.body["metadata"]
        count = self._decisions.count(
            run.key,
            wanted.autoscaling,
            wanted.replicas,
            run.current,
            plan.replicas_changed_by(meta.get("managedFields") or []),
        )
        if count.ignored:
            log.warning("%s/%s: %s", *run.key, count.ignored)
            self.events.post(run.body, "Warning", "ReplicasIgnored", count.ignored)
        run.spec_replicas = wanted.replicas
        wanted = replace(wanted, replicas=count.replicas)
        seen, conflicts = self._observed(run)
        run.problems.extend(conflicts)
        log.debug(
            "%s/%s: reconcile generation %s (status %s); deployments %s",
            *run.key,
            run.generation,
            run.current.get("observedGeneration"),
            {
                mode: (version(d), d.get("spec", {}).get("replicas"))
                for mode, d in seen.deployments.items()
            },
        )
        # Rendered once, for the plan and for the status (rolled out yet?).
        deployment = render.deployment(run.owner, wanted)
        todo = plan.actions(
            run.owner,
            wanted,
            seen,
            spec_changed=run.current.get("observedGeneration") != run.generation,
            first=not run.current,
            scaled_by=count.scaled_by,
            deployment=deployment,
        )
        return wanted, deployment, todo

    async def _act(self, run: _Run, todo: list[plan.Action]) -> bool | None:
        """Carry the actions out until one fails; whether that failure may pass by itself,
        or None when the namespace is being deleted (nothing left to do or report)."""
        for action in todo:
            try:
                await self._write(run, action)
            except KubeError as exc:
                if exc.terminating:
                    # Its namespace is going, and the CoreCluster with it:
                    # nothing to report, and events could not be posted.
                    log.debug("%s/%s: namespace terminating: %s", *run.key, exc.message)
                    self.forget(run.key)
                    return None
                if action.verb == "create" and exc.exists:
                    kind, name = action.body["kind"], action.body["metadata"]["name"]
                    run.problems.append(plan.not_ours(run.owner, kind, name))
                    continue
                run.problems.append(status.Problem("ApplyFailed", exc.message))
                return exc.transient
            if action.message:
                log.info("%s/%s: %s", *run.key, action.message)
                self.events.post(run.body, "Normal", action.reason, action.message)
        return False

    async def _write(self, run: _Run, action: plan.Action) -> None:
        body = action.body
        kind = body["kind"]
        if kind == "Deployment":
            kind = f"Deployment/{body['metadata']['labels'][names.MODE_LABEL]}"
        before = version(watched_child(run.watched, kind))
        if action.verb == "delete":
            await self.kube.delete(body)
            self._own.deleted(run.key, kind, version(body))
        else:
            written = await (self.kube.create if action.verb == "create" else self.kube.apply)(body)
            written.get("metadata", {}).pop("managedFields", None)
            self._own.applied(run.key, kind, written, before)

    def _observed(self, run: _Run) -> tuple[status.Observed, list[status.Problem]]:
        """The children this CoreCluster controls (the watched copies merged with own
        writes), and a problem for each labelled object with a child's name it does not."""
        return plan.split_ownership(run.owner, self._own.merged(run.key, run.watched))

    async def _report(
        self, run: _Run, new: Object, error: str | None, *, desired: int | None = None
    ) -> None:
        """Write the status if it changed; warn once per new problem.

        ``desired`` is the worker count the spec (or the autoscaler) asks
        for, unknown when the spec cannot be used.
        """
        key, current = run.key, run.current
        metrics.corecluster(key, new["conditions"], desired, new.get("readyReplicas"))
        if status.differs(current, new):
            written = await self.kube.patch_status(key[0], key[1], new)
            if written is not None:
                self._own.status_written(key, version(run.body), new)
        degraded = next(c for c in new["conditions"] if c["type"] == "Degraded")
        before: Object = next(
            (c for c in current.get("conditions") or [] if c.get("type") == "Degraded"), {}
        )
        if degraded["status"] == "True" and degraded["message"] != before.get("message"):
            text = error or degraded["message"]
            log.warning("%s/%s: %s", key[0], key[1], text)
            self.events.post(run.body, "Warning", degraded["reason"], text)
        elif degraded["status"] == "False" and before.get("status") == "True":
            log.info("%s/%s: recovered: %s", key[0], key[1], degraded["message"])
            self.events.post(run.body, "Normal", "Recovered", "no problem seen any more")
