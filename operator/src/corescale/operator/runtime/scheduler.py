"""The running operator's parts, built once at startup, and the one way a reconcile begins.

What wakes a reconcile, all through :meth:`Scheduler.reconcile` (awaited) or
:meth:`Scheduler.schedule` (a task of its own):

* any event of the CoreCluster: created, changed (including ``kubectl
  scale`` and the HPA, which change ``spec.replicas``), its status written,
  or found at startup (handlers.py);
* a change to a child (Deployment, Service, PodDisruptionBudget,
  EndpointSlice or pod), as childwatch.py sees it: this repairs drift within
  seconds and keeps the status current;
* the autoscaler's new count (runtime/autoscaling.py);
* a retry after a reconcile that could not finish: in 5 s when the API call
  may pass by itself (timeouts, overload), every ``CORESCALE_RESYNC_SECONDS``
  when the API server refused it (permissions, quota, admission, a body its
  schema refuses, a name held by an object the CoreCluster does not
  control). A spec the operator cannot use waits for the next change of it.

Each path waits until every kind of child has been listed once (a reconcile
that saw no pods would report no worker ready, and one that saw no
Deployment would try to create it), and each outcome gets the same retry.
There is deliberately no kopf timer (kopf puts a finalizer on every object
with a timer, which makes deleting a CoreCluster hang whenever the operator
is not running), nor kopf's retries (kopf logs an ERROR and posts an event
on every attempt, where the reconcile reports each new problem once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from corescale.operator.autoscaler.gather import Gatherer, Target
from corescale.operator.process.settings import Settings
from corescale.operator.runtime import autoscaling, stores
from corescale.operator.runtime.childwatch import ChildStore, ChildWatch
from corescale.operator.runtime.events import Events
from corescale.operator.runtime.kube import Kube, KubeError
from corescale.operator.runtime.outcome import TRANSIENT_DELAY, Outcome
from corescale.operator.runtime.own_writes import Key
from corescale.operator.runtime.reconcile import Reconciler, Snapshot

log = logging.getLogger(__name__)


class Scheduler:
    """The stores, the watches, the reconciler, the autoscaler and the retries."""

    def __init__(self, settings: Settings, kube: Kube) -> None:
        self.settings = settings
        self.kube = kube
        self.events = Events(kube)
        self.reconciler = Reconciler(kube, settings, self.events)
        self.coreclusters = stores.CoreClusters()
        self.children: dict[str, ChildStore] = {
            kind_id: ChildStore(kind.summary) for kind_id, kind in stores.KINDS.items()
        }
        self.watches = [
            ChildWatch(kube, settings.namespaces, stores.KINDS[kind_id], store)
            for kind_id, store in self.children.items()
        ]
        for watch in self.watches:
            watch.on_change = self._child_changed
        self._parsed: autoscaling.Parsed = {}
        self.gatherer = Gatherer(self._targets, autoscaling.applier(self.reconciler, self.schedule))
        self._tasks: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._retries: dict[Key, asyncio.TimerHandle] = {}
        self._said: dict[Key, str] = {}

    def start(self) -> None:
        """Start the child watches, the autoscaler's loop and the event poster."""
        self._tasks = [
            *(
                asyncio.create_task(watch.run(), name=f"corescale {watch.kind.plural}")
                for watch in self.watches
            ),
            asyncio.create_task(self.gatherer.run(), name="corescale autoscaler"),
            asyncio.create_task(self.events.run(), name="corescale events"),
        ]

    async def stop(self) -> None:
        """Stop the background work, then the API client.

        The reconciles still running are cancelled and awaited before the
        client closes: one still waiting for its turn would otherwise call a
        closed client and fail unseen ("Task exception was never retrieved",
        one ERROR with a traceback each: 15 of them in one stop at 1,000
        CoreClusters).
        """
        self.reconciler.close()
        for pending in self._retries.values():
            pending.cancel()
        tasks = [*self._tasks, *self._running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.kube.close()

    def seen(self, body: Mapping[str, Any]) -> Key:
        """kopf's watch showed this copy of a CoreCluster."""
        return self.coreclusters.put(body)

    def deleted(self, key: Key) -> None:
        """A CoreCluster is gone: forget it (Kubernetes removes the children it controls)."""
        self.coreclusters.remove(key)
        self.reconciler.forget(key)
        self._retry_later(key, Outcome())
        log.info("%s/%s: deleted; Kubernetes removes the children it controls", *key)

    def snapshot(self, key: Key) -> Snapshot:
        """A reader of the newest CoreCluster and children, for when the reconcile gets its turn."""
        return lambda: (self.coreclusters.get(key), stores.observed(key, self.children))

    async def reconcile(self, key: Key) -> None:
        """One reconcile once the children are listed, then the retry its outcome calls for."""
        for store in self.children.values():
            await store.synced.wait()
        try:
            outcome = await self.reconciler.reconcile_soon(key, self.snapshot(key))
        except KubeError as exc:
            # A call outside the children's writes (status, owner check) failed;
            # the status could not say so, so the log does, once per message.
            outcome = Outcome.of(exc)
            self._say_once(key, exc.message)
        except Exception as exc:
            # kopf's event handler does not retry; the retry is the
            # operator's, at the resync period, with the traceback logged
            # once per message.
            message = f"unexpected {type(exc).__name__}: {exc}"
            outcome = Outcome(message)
            self._say_once(key, message, traceback=True)
        self._retry_later(key, outcome)

    def schedule(self, key: Key) -> None:
        """:meth:`reconcile` as a task of its own, kept until it ends.

        The trigger does not wait: a watch reads on at once, and while a
        reconcile waits for its turn the CoreCluster's later changes fold
        into it (Reconciler.reconcile_soon) instead of queueing runs.
        """
        task = asyncio.create_task(self.reconcile(key))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def _child_changed(self, key: Key) -> None:
        if key in self.coreclusters:  # else its CoreCluster is gone: the children go too
            self.schedule(key)

    def _targets(self) -> dict[Key, Target]:
        return autoscaling.targets(
            self.coreclusters.items(),
            self.children[stores.PODS],
            self.reconciler,
            self.settings.worker_image,
            self._parsed,
        )

    def _say_once(self, key: Key, message: str, *, traceback: bool = False) -> None:
        """Log a failed reconcile, unless its last failure said the same."""
        if self._said.get(key) != message:
            self._said[key] = message
            if traceback:
                log.exception("%s/%s: reconcile failed: %s", *key, message)
            else:
                log.warning("%s/%s: reconcile failed: %s", *key, message)

    def _retry_later(self, key: Key, outcome: Outcome) -> None:
        """Replace the CoreCluster's pending retry with the one ``outcome`` calls for (or none)."""
        pending = self._retries.pop(key, None)
        if pending is not None:
            pending.cancel()
        if not outcome.retry:
            self._said.pop(key, None)
            return
        delay = TRANSIENT_DELAY if outcome.transient else self.settings.resync_seconds

        def fire() -> None:
            self._retries.pop(key, None)
            if key in self.coreclusters:  # else deleted meanwhile
                self.schedule(key)

        self._retries[key] = asyncio.get_running_loop().call_later(delay, fire)
