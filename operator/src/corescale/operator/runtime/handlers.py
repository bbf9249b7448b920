"""The kopf handlers: thin wiring from events to :class:`Reconciler`.

What wakes a reconcile:

* any event of the CoreCluster: created, changed (including ``kubectl
  scale`` and the HPA, which change ``spec.replicas``), its status written,
  or found at startup (:func:`on_corecluster_event`);
* a change to a child (Deployment, Service, PodDisruptionBudget,
  EndpointSlice or pod), as childwatch.py sees it: this repairs drift within
  seconds and keeps the status current;
* a retry (:func:`_retry_later`) after a reconcile that could not finish:
  in 5 s when the API call may pass by itself (timeouts, overload), every
  ``CORESCALE_RESYNC_SECONDS`` when the API server refused it (permissions,
  quota, admission, a body its schema refuses, a name held by an object the
  CoreCluster does not control). A spec the operator cannot use waits for
  the next change of the spec.

There is deliberately no kopf timer: kopf puts a finalizer on every object
with a timer, and a finalizer makes deleting a CoreCluster (or its
namespace) hang whenever the operator is not running. Nor are kopf's
retries used (``kopf.TemporaryError``): kopf logs an ERROR and posts an
event on every attempt, where the reconcile already reports each new
problem once in the status, an event and one log line.

The CoreClusters are read from a kopf index, an in-memory view that kopf
keeps current from its watch, and the children from the stores that
childwatch.py keeps current (its docstring says why not kopf), so a
reconcile that finds nothing to change makes no API call at all. kopf
passes its index to every handler as a keyword named by its id (CC_INDEX);
handlers take it with the rest as ``**indexes``, and the reconciles read
it and the stores together, by CC_INDEX and the ids in KINDS. Handlers are registered by
:func:`register` rather than by decorators at import, so importing this
module has no side effects and the operator runs on its own registry.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from corescale.operator.api.names import (
    CHILDREN,
    CLUSTER_LABEL,
    CORECLUSTERS,
    MANAGED_BY,
    MODE_LABEL,
    SERVICE_NAME_LABEL,
    SLICE_MANAGER,
    SLICE_MANAGER_LABEL,
)
from corescale.operator.autoscaler.gather import Gatherer, Target
from corescale.operator.decide import plan, status
from corescale.operator.process.settings import Settings
from corescale.operator.runtime import autoscaling, kube
from corescale.operator.runtime.childwatch import ChildStore, ChildWatch, Kind
from corescale.operator.runtime.kube import KubeError
from corescale.operator.runtime.own_writes import version
from corescale.operator.runtime.reconcile import TRANSIENT_DELAY, Outcome, Reconciler, Snapshot

log = logging.getLogger(__name__)

OURS = f"app.kubernetes.io/managed-by={MANAGED_BY},{CLUSTER_LABEL}"
"""The label selector of every child: the operator's labels, with a CoreCluster named."""
SLICES = f"{OURS},{SLICE_MANAGER_LABEL}={SLICE_MANAGER},{SERVICE_NAME_LABEL}"
"""The EndpointSlices of the CoreClusters' Services (the controller copies their labels)."""
Key = tuple[str, str]


def _trimmed(body: Mapping[str, Any], keep_managed_fields: bool = False) -> dict[str, Any]:
    """A plain copy of a watched object, without the bulky managedFields (or,
    for a CoreCluster, with only the entries plan.replicas_changed_by reads)."""
    plain = {key: value for key, value in body.items() if key != "metadata"}
    metadata = dict(body.get("metadata", {}))
    managed = metadata.pop("managedFields", None)
    if keep_managed_fields and managed is not None:
        metadata["managedFields"] = plan.replica_owners(managed)
    return plain | {"metadata": metadata}


def _index_corecluster(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(namespace or "", name): _trimmed(body, keep_managed_fields=True)}


# The ids under which the reconciles read the CoreClusters (kopf's index,
# also the keyword kopf passes it under) and each kind of child (a store of
# childwatch.py's).
CC_INDEX, DEPLOYMENT_INDEX, SERVICE_INDEX, BUDGET_INDEX, POD_INDEX, SLICE_INDEX = (
    "cc_index",
    "deployment_index",
    "service_index",
    "budget_index",
    "pod_index",
    "slice_index",
)
KINDS: dict[str, Kind] = {
    DEPLOYMENT_INDEX: Kind(*CHILDREN["deployments"], OURS, _trimmed),
    SERVICE_INDEX: Kind(*CHILDREN["services"], OURS, _trimmed),
    BUDGET_INDEX: Kind(*CHILDREN["budgets"], OURS, _trimmed),
    POD_INDEX: Kind(*CHILDREN["pods"], OURS, autoscaling.pod_summary),
    SLICE_INDEX: Kind(*CHILDREN["endpointslices"], SLICES, status.slice_summary),
}
"""What childwatch.py watches of the children, and keeps of each."""


def observed(key: Key, indexes: Mapping[str, Any]) -> status.Observed:
    """The children of one CoreCluster, from the stores by their ids (KINDS)."""
    name = key[1]
    deployments = {
        d["metadata"]["labels"].get(MODE_LABEL, ""): d
        for d in indexes[DEPLOYMENT_INDEX].get(key, ())
        if d["metadata"]["name"].startswith(f"{name}-")
    }
    service = next(
        (s for s in indexes[SERVICE_INDEX].get(key, ()) if s["metadata"]["name"] == name), None
    )
    budget = next(
        (b for b in indexes[BUDGET_INDEX].get(key, ()) if b["metadata"]["name"] == name), None
    )
    return status.Observed(
        deployments=deployments,
        service=service,
        disruption_budget=budget,
        pods=list(indexes[POD_INDEX].get(key, ())),
        endpoint_slices=[
            s for s in indexes[SLICE_INDEX].get(key, ()) if s["metadata"]["service"] == name
        ],
    )


def snapshot(
    key: Key, indexes: Mapping[str, Any], body: Mapping[str, Any] | None = None
) -> Snapshot:
    """A reader of the newest CoreCluster and children, for when the reconcile gets its turn.

    kopf's indexes are live views, so reading them later gives later state;
    ``body`` (what a handler was called with) is used if the index is older.
    """

    def take() -> tuple[Mapping[str, Any] | None, status.Observed]:
        candidates = [*indexes[CC_INDEX].get(key, ()), *([body] if body is not None else [])]
        newest = max(candidates, key=version, default=None)
        return newest, observed(key, indexes)

    return take


def _reconciler(memo: kopf.Memo) -> Reconciler:
    reconciler: Reconciler = memo["reconciler"]
    return reconciler


async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Tune kopf, connect to the API and make sure the peering object exists."""
    ours: Settings = memo["settings"]
    # The operator posts its own events; kopf adds only warnings and errors.
    settings.posting.level = logging.WARNING
    settings.peering.stealth = True
    settings.peering.lifetime = ours.peering_lifetime
    api = kube.Kube(await kube.connect())
    if ours.peering:
        try:
            await api.ensure_peering(ours.peering, ours.namespaces)
        except KubeError as exc:
            if exc.transient:
                raise kopf.TemporaryError(exc.message, delay=TRANSIENT_DELAY) from exc
            raise kopf.PermanentError(
                f"{exc.message}; are the peering CRDs of manifests/crd/kopf.dev_peerings.yaml "
                "installed? (CORESCALE_PEERING= runs without peering)"
            ) from exc
    memo["reconciler"] = Reconciler(api, ours)
    watches = {
        index_id: ChildWatch(api, ours.namespaces, kind, ChildStore(kind.summary))
        for index_id, kind in KINDS.items()
    }
    memo["child_watches"] = watches
    memo["child_tasks"] = [
        asyncio.create_task(watch.run(), name=f"corescale {watch.kind.plural}")
        for watch in watches.values()
    ]
    # Each resource handler gets a shallow copy of this memo: what handlers
    # share lives in containers made here, which every copy refers to.
    memo["autoscaler"] = {}  # filled by the first resource handler: _start_autoscaler
    memo["indexes"] = {}  # filled by the first resource handler: _keep_indexes
    memo["said"] = {}
    memo["retries"] = {}
    memo["retrying"] = set()
    scope = ", ".join(ours.namespaces) if ours.namespaces else "all namespaces"
    log.info(
        "watching CoreClusters in %s; default worker image %s; %s",
        scope,
        ours.worker_image,
        f"peering {ours.peering!r} with priority {ours.priority}"
        if ours.peering
        else "standalone (no peering)",
    )


def _start_autoscaler(memo: kopf.Memo, indexes: Mapping[str, Any]) -> None:
    """The autoscaler's loop, started by the first resource handler call.

    kopf hands its indexes only to resource handlers, and the events the
    reconcile posts need the context of kopf's resource processing; so the
    loop starts from within the first such call, as a task of its own that
    never blocks a handler. Each handler gets a shallow copy of the memo:
    the shared "autoscaler" dict is how every copy sees that it runs.
    """
    shared: dict[str, Any] = memo["autoscaler"]
    if shared:
        return
    reconciler = _reconciler(memo)
    ours: Settings = memo["settings"]
    kept = _keep_indexes(memo, indexes)
    parsed: autoscaling.Parsed = {}

    def targets() -> dict[Key, Target]:
        return autoscaling.targets(
            kept[CC_INDEX], kept[POD_INDEX], reconciler, ours.worker_image, parsed
        )

    def snapshot_of(key: Key) -> Snapshot:
        return snapshot(key, kept)

    gatherer = Gatherer(targets, autoscaling.applier(reconciler, snapshot_of))
    shared["gatherer"] = gatherer
    shared["task"] = asyncio.create_task(gatherer.run(), name="corescale autoscaler")


def _keep_indexes(memo: kopf.Memo, indexes: Mapping[str, Any]) -> dict[str, Any]:
    """kopf's index and the children's stores, by CC_INDEX and the ids in KINDS, kept where
    the retries and the autoscaler, which kopf does not call with the index,
    can read them (the live views, not a copy)."""
    kept: dict[str, Any] = memo["indexes"]
    if not kept:
        kept[CC_INDEX] = indexes[CC_INDEX]
        watches: dict[str, ChildWatch] = memo["child_watches"]
        kept.update({index_id: watch.store for index_id, watch in watches.items()})
    return kept


def _follow_children(memo: kopf.Memo, indexes: Mapping[str, Any]) -> None:
    """Reconcile a CoreCluster when its children change, from the first handler call on.

    The reconcile posts events, which needs the context of kopf's resource
    processing; the child watches run outside it, so each reconcile they
    cause runs in a copy of the context of the handler call that set this
    up. Changes before that call need nothing: every CoreCluster's first
    reconcile reads its children anyway.
    """
    watches: dict[str, ChildWatch] = memo["child_watches"]
    if watches[DEPLOYMENT_INDEX].on_change is not None:
        return
    kept = _keep_indexes(memo, indexes)
    context = contextvars.copy_context()

    def changed(key: Key) -> None:
        if not kept[CC_INDEX].get(key):
            return  # its CoreCluster is gone; garbage collection removes the children
        _spawn(memo, key, snapshot(key, kept), context)

    for watch in watches.values():
        watch.on_change = changed


async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop the background work, then the API client.

    The reconciles the child watches started are cancelled and awaited
    before the client closes: one still waiting for its turn would
    otherwise call a closed client and fail unseen ("Task exception was
    never retrieved", one ERROR with a traceback each: 15 of them in one
    stop at 1,000 CoreClusters).
    """
    for task in (memo.get("autoscaler", {}).get("task"), *memo.get("child_tasks", ())):
        if task is not None:
            task.cancel()
    running: set[asyncio.Task[None]] = memo.get("retrying", set())
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    for pending in memo.get("retries", {}).values():
        pending.cancel()
    if "reconciler" in memo:
        await _reconciler(memo).close()


async def _run(memo: kopf.Memo, key: Key, take: Snapshot) -> None:
    """One reconcile, then the retry its outcome calls for.

    Not before every kind of child has been listed once: a reconcile that saw
    no pods would report no worker ready, and one that saw no Deployment
    would try to create it.
    """
    watches: dict[str, ChildWatch] = memo["child_watches"]
    for watch in watches.values():
        await watch.store.synced.wait()
    reconciler = _reconciler(memo)
    try:
        outcome = await reconciler.reconcile_soon(key, take)
    except KubeError as exc:
        # A call outside the children's writes (status, owner check) failed;
        # the status could not say so, so the log does, once per message.
        outcome = Outcome(exc.message, exc.transient)
        _say_once(memo, key, exc.message)
    except Exception as exc:
        # kopf retried a failed create/update handler by itself; its event
        # handler does not, so the retry is the operator's, at the resync
        # period, with the traceback logged once per message.
        message = f"unexpected {type(exc).__name__}: {exc}"
        outcome = Outcome(message)
        _say_once(memo, key, message, traceback=True)
    _retry_later(memo, key, outcome)


def _say_once(memo: kopf.Memo, key: Key, message: str, *, traceback: bool = False) -> None:
    """Log a failed reconcile, unless its last failure said the same (``memo["said"]``)."""
    said: dict[Key, str] = memo["said"]
    if said.get(key) != message:
        said[key] = message
        if traceback:
            log.exception("%s/%s: reconcile failed: %s", *key, message)
        else:
            log.warning("%s/%s: reconcile failed: %s", *key, message)


def _spawn(
    memo: kopf.Memo, key: Key, take: Snapshot, context: contextvars.Context | None = None
) -> None:
    """A reconcile "soon" as a task of its own, kept until it ends.

    A child's change does not wait for the reconcile it causes: the watch
    reads on at once, and while a reconcile waits for its turn
    (CONCURRENT_RUNS) the CoreCluster's later changes fold into it
    (Reconciler.reconcile_soon) instead of queueing runs of their own.
    """
    running: set[asyncio.Task[None]] = memo["retrying"]
    task = asyncio.create_task(_run(memo, key, take), context=context)
    running.add(task)
    task.add_done_callback(running.discard)


def _retry_later(memo: kopf.Memo, key: Key, outcome: Outcome) -> None:
    """Replace the CoreCluster's pending retry with the one ``outcome`` calls for (or none)."""
    retries: dict[Key, asyncio.TimerHandle] = memo["retries"]
    pending = retries.pop(key, None)
    if pending is not None:
        pending.cancel()
    if not outcome.retry:
        memo.get("said", {}).pop(key, None)
        return
    ours: Settings = memo["settings"]
    delay = TRANSIENT_DELAY if outcome.transient else ours.resync_seconds

    def fire() -> None:
        retries.pop(key, None)
        if not memo["indexes"][CC_INDEX].get(key):
            return  # deleted meanwhile
        _spawn(memo, key, snapshot(key, memo["indexes"]))

    retries[key] = asyncio.get_running_loop().call_later(delay, fire)


async def on_corecluster_event(
    type: str | None, body: kopf.Body, memo: kopf.Memo, **indexes: Any
) -> None:
    """Every event of a CoreCluster: a deletion is forgotten, anything else reconciled.

    One event handler, not kopf's create, update and resume handlers: those
    write kopf's bookkeeping into two annotations after every change (two
    writes of the CoreCluster per spec change, and two more watch events),
    while the reconcile needs none of it: it compares the spec with the
    status (observedGeneration) and the children, not with the last change.
    The events of the operator's own status writes come here too, and their
    reconciles find nothing to do without an API call. Listed CoreClusters
    arrive with ``type`` None when the operator starts.
    """
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    if type == "DELETED":
        if "reconciler" in memo:
            _reconciler(memo).forget(key)
            _retry_later(memo, key, Outcome())
            log.info("%s/%s: deleted; Kubernetes removes the children it controls", *key)
        return
    _start_autoscaler(memo, indexes)
    _follow_children(memo, indexes)
    await _run(memo, key, snapshot(key, _keep_indexes(memo, indexes), body))


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach every handler to ``registry``."""
    # kopf logs in with the same library and the same rules as kube.py
    # (in-cluster, else KUBECONFIG), whichever other clients are installed.
    kopf.on.login(registry=registry)(kopf.login_via_async_client)
    kopf.on.startup(registry=registry)(on_startup)
    kopf.on.cleanup(registry=registry)(on_cleanup)
    kopf.index(*CORECLUSTERS, id=CC_INDEX, registry=registry)(_index_corecluster)
    kopf.on.event(*CORECLUSTERS, registry=registry, id="reconcile")(on_corecluster_event)
