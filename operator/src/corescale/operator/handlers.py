"""The kopf handlers: thin wiring from events to :class:`Reconciler`.

What wakes a reconcile:

* the CoreCluster is created, changed (including ``kubectl scale`` and the
  HPA, which change ``spec.replicas``) or found at startup (resume);
* any event on a child (Deployment, Service, PodDisruptionBudget, or a pod):
  this repairs drift within seconds and keeps the status current;
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

The children are read from kopf indexes, in-memory views that kopf keeps
current from its watches (the pods from podwatch.py's store, which the
operator keeps current itself), so a reconcile that finds nothing to change makes
no API call at all. kopf passes each index to every handler as a keyword
named by its id (INDEXES); handlers name the keywords they use and take the
rest, the indexes among them, as ``**indexes``. Handlers are registered by
:func:`register` rather than by decorators at import, so importing this
module has no side effects and the operator runs on its own registry.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from corescale.operator import kube, plan, scaling, status
from corescale.operator.gather import Gatherer, Target
from corescale.operator.kube import KubeError
from corescale.operator.names import (
    CHILDREN,
    CLUSTER_LABEL,
    CORECLUSTERS,
    MANAGED_BY,
    MODE_LABEL,
    SERVICE_NAME_LABEL,
    SLICE_MANAGER,
    SLICE_MANAGER_LABEL,
)
from corescale.operator.own_writes import version
from corescale.operator.podwatch import PodStore, PodWatch
from corescale.operator.reconcile import TRANSIENT_DELAY, Outcome, Reconciler, Snapshot
from corescale.operator.settings import Settings

log = logging.getLogger(__name__)

OURS: dict[str, Any] = {
    "app.kubernetes.io/managed-by": MANAGED_BY,
    CLUSTER_LABEL: kopf.PRESENT,
}
SLICES: dict[str, Any] = OURS | {
    SLICE_MANAGER_LABEL: SLICE_MANAGER,
    SERVICE_NAME_LABEL: kopf.PRESENT,
}
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


def _child_key(namespace: str | None, labels: Mapping[str, str]) -> Key:
    return (namespace or "", labels[CLUSTER_LABEL])


def _index_corecluster(
    namespace: str, name: str, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(namespace, name): _trimmed(body, keep_managed_fields=True)}


def _index_child(
    summary: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> Callable[..., dict[Key, dict[str, Any]]]:
    """An indexing function that files ``summary(body)`` of a child under its CoreCluster."""

    def index(
        namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[Key, dict[str, Any]]:
        return {_child_key(namespace, labels): summary(body)}

    return index


# The indexes, by the id kopf registers each under, which is also the keyword
# under which kopf passes it to every handler: (resource, label filter, what
# to keep of each object). POD_INDEX is where _views adds the pod store.
CC_INDEX, DEPLOYMENT_INDEX, SERVICE_INDEX, BUDGET_INDEX, POD_INDEX, SLICE_INDEX = (
    "cc_index",
    "deployment_index",
    "service_index",
    "budget_index",
    "pod_index",
    "slice_index",
)
INDEXES: dict[str, tuple[tuple[str, ...], Mapping[str, Any] | None, Callable[..., Any]]] = {
    CC_INDEX: (CORECLUSTERS, None, _index_corecluster),
    DEPLOYMENT_INDEX: (CHILDREN["deployments"], OURS, _index_child(_trimmed)),
    SERVICE_INDEX: (CHILDREN["services"], OURS, _index_child(_trimmed)),
    BUDGET_INDEX: (CHILDREN["budgets"], OURS, _index_child(_trimmed)),
    SLICE_INDEX: (CHILDREN["endpointslices"], SLICES, _index_child(status.slice_summary)),
}
"""The pods are not among them: podwatch.py watches those itself (its docstring
says why), and they reach the reconciles under POD_INDEX all the same (_views)."""
CHILD_LABELS = {
    resource: SLICES if resource == CHILDREN["endpointslices"] else OURS
    for kind, resource in CHILDREN.items()
    if kind != "pods"
}


def observed(key: Key, indexes: Mapping[str, Any]) -> status.Observed:
    """The children of one CoreCluster, from the indexes kopf passes to every handler."""
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
    # Keep kopf's bookkeeping in annotations: the CRD's structural schema
    # would prune anything kopf wrote under .status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="corescale.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="corescale.io", key="last-handled-configuration"
    )
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
    memo["pods"] = PodStore()
    memo["pod_watch"] = PodWatch(api, ours.namespaces, memo["pods"])
    memo["pod_watch_task"] = asyncio.create_task(memo["pod_watch"].run(), name="corescale pods")
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
    parsed: scaling.Parsed = {}

    def targets() -> dict[Key, Target]:
        return scaling.targets(
            kept[CC_INDEX], kept[POD_INDEX], reconciler, ours.worker_image, parsed
        )

    def snapshot_of(key: Key) -> Snapshot:
        return snapshot(key, kept)

    gatherer = Gatherer(targets, scaling.applier(reconciler, snapshot_of))
    shared["gatherer"] = gatherer
    shared["task"] = asyncio.create_task(gatherer.run(), name="corescale autoscaler")


def _keep_indexes(memo: kopf.Memo, indexes: Mapping[str, Any]) -> dict[str, Any]:
    """kopf's indexes and the pods, kept where timers and the autoscaler, which
    kopf does not call with them, can read them (the live views, not a copy)."""
    kept: dict[str, Any] = memo["indexes"]
    if not kept:
        kept.update(_views(memo, indexes))
    return kept


def _views(memo: kopf.Memo, indexes: Mapping[str, Any]) -> dict[str, Any]:
    """kopf's indexes with the pods of podwatch.py under POD_INDEX."""
    return {index_id: indexes[index_id] for index_id in INDEXES} | {POD_INDEX: memo["pods"]}


def _follow_pods(memo: kopf.Memo, indexes: Mapping[str, Any]) -> None:
    """Reconcile a CoreCluster when its pods change, from the first resource handler on.

    The reconcile posts events, which needs the context of kopf's resource
    processing; the pod watch runs outside it, so each reconcile it causes
    runs in a copy of the context of the handler call that set this up.
    Changes before that call need nothing: every CoreCluster's first
    reconcile reads its pods anyway.
    """
    watch: PodWatch = memo["pod_watch"]
    if watch.on_change is not None:
        return
    kept = _keep_indexes(memo, indexes)
    context = contextvars.copy_context()

    def changed(key: Key) -> None:
        if not kept[CC_INDEX].get(key):
            return  # its CoreCluster is gone; garbage collection removes the pods
        _spawn(memo, key, snapshot(key, kept), context)

    watch.on_change = changed


async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    for task in (memo.get("autoscaler", {}).get("task"), memo.get("pod_watch_task")):
        if task is not None:
            task.cancel()
    for pending in memo.get("retries", {}).values():
        pending.cancel()
    if "reconciler" in memo:
        await _reconciler(memo).close()


async def _run(memo: kopf.Memo, key: Key, take: Snapshot, *, soon: bool) -> None:
    """One reconcile, then the retry its outcome calls for.

    Not before every pod has been listed once: a reconcile that saw no pods
    would report no worker ready, and write that.
    """
    pods: PodStore = memo["pods"]
    await pods.synced.wait()
    reconciler = _reconciler(memo)
    try:
        if soon:
            outcome = await reconciler.reconcile_soon(key, take)
        else:
            outcome = await reconciler.reconcile(key, take)
    except KubeError as exc:
        # A call outside the children's writes (status, owner check) failed;
        # the status could not say so, so the log does, once per message.
        outcome = Outcome(exc.message, exc.transient)
        said: dict[Key, str] = memo["said"]
        if said.get(key) != exc.message:
            said[key] = exc.message
            log.warning("%s/%s: reconcile failed: %s", *key, exc.message)
    _retry_later(memo, key, outcome)


def _spawn(
    memo: kopf.Memo, key: Key, take: Snapshot, context: contextvars.Context | None = None
) -> None:
    """A reconcile "soon" as a task of its own, kept until it ends.

    Child events do not wait for the reconcile they cause: kopf's worker for
    the child is then free at once, and while a reconcile waits for its turn
    (CONCURRENT_RUNS) the child's later events are folded by kopf into the
    newest, instead of piling up parsed in its queue.
    """
    running: set[asyncio.Task[None]] = memo["retrying"]
    task = asyncio.create_task(_run(memo, key, take, soon=True), context=context)
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


async def on_corecluster(body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:
    """Create, update, resume: reconcile; a failure is retried by :func:`_retry_later`."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    _start_autoscaler(memo, indexes)
    _follow_pods(memo, indexes)
    await _run(memo, key, snapshot(key, _views(memo, indexes), body), soon=False)


async def on_corecluster_event(
    type: str, namespace: str | None, name: str, memo: kopf.Memo, **_: Any
) -> None:
    """Forget a deleted CoreCluster; the children it controls go by their ownerReferences."""
    if type == "DELETED" and "reconciler" in memo:
        key = (namespace or "", name)
        _reconciler(memo).forget(key)
        _retry_later(memo, key, Outcome())
        log.info("%s/%s: deleted; Kubernetes removes the children it controls", namespace, name)


async def on_child_event(
    namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **indexes: Any
) -> None:
    """A child changed or vanished: reconcile its CoreCluster (drift and status)."""
    if "reconciler" not in memo:
        return
    key = _child_key(namespace, labels)
    _start_autoscaler(memo, indexes)
    _follow_pods(memo, indexes)
    if not indexes[CC_INDEX].get(key):
        return  # its CoreCluster is gone; garbage collection removes the child
    _spawn(memo, key, snapshot(key, _views(memo, indexes)))


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach every handler to ``registry``."""
    # kopf logs in with the same library and the same rules as kube.py
    # (in-cluster, else KUBECONFIG), whichever other clients are installed.
    kopf.on.login(registry=registry)(kopf.login_via_async_client)
    kopf.on.startup(registry=registry)(on_startup)
    kopf.on.cleanup(registry=registry)(on_cleanup)
    for index_id, (resource, labels, index) in INDEXES.items():
        kopf.index(*resource, labels=labels, id=index_id, registry=registry)(index)
    for cause in (kopf.on.create, kopf.on.update, kopf.on.resume):
        cause(*CORECLUSTERS, registry=registry, id="reconcile")(on_corecluster)
    kopf.on.event(*CORECLUSTERS, registry=registry)(on_corecluster_event)
    for resource, labels in CHILD_LABELS.items():
        kopf.on.event(*resource, labels=labels, registry=registry)(on_child_event)
