"""The kopf handlers: thin wiring from events to :class:`Reconciler`.

What wakes a reconcile:

* the CoreCluster is created, changed (including ``kubectl scale`` and the
  HPA, which change ``spec.replicas``) or found at startup (resume);
* any event on a child (Deployment, Service, PodDisruptionBudget, or a pod):
  this repairs drift within seconds and keeps the status current;
* a retry every ``CORESCALE_RESYNC_SECONDS`` while the API server refuses
  a child for reasons outside the spec (permissions, quota, admission).

There is deliberately no kopf timer: kopf puts a finalizer on every object
with a timer, and a finalizer makes deleting a CoreCluster (or its
namespace) hang whenever the operator is not running.

The children are read from kopf indexes, in-memory views that kopf keeps
current from its watches, so a reconcile that finds nothing to change makes
no API call at all. Handlers are registered by :func:`register` rather than
by decorators at import, so importing this module has no side effects and
the operator runs on its own registry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from corescale.operator import kube, status
from corescale.operator.kube import KubeError
from corescale.operator.names import CHILDREN, CLUSTER_LABEL, CORECLUSTERS, MANAGED_BY, MODE_LABEL
from corescale.operator.reconcile import TRANSIENT_DELAY, Outcome, Reconciler, Snapshot
from corescale.operator.settings import Settings

log = logging.getLogger(__name__)

OURS: dict[str, Any] = {
    "app.kubernetes.io/managed-by": MANAGED_BY,
    CLUSTER_LABEL: kopf.PRESENT,
}
Key = tuple[str, str]


def _trimmed(body: Mapping[str, Any], keep_managed_fields: bool = False) -> dict[str, Any]:
    """A plain copy of a watched object, without the bulky managedFields."""
    plain = {key: value for key, value in body.items() if key != "metadata"}
    metadata = dict(body.get("metadata", {}))
    if not keep_managed_fields:
        metadata.pop("managedFields", None)
    return plain | {"metadata": metadata}


def _pod_summary(body: Mapping[str, Any]) -> dict[str, Any]:
    """Only what status.pod_problems reads, so thousands of pods cost little memory."""
    pod_status = body.get("status") or {}
    return {
        "metadata": {"name": body["metadata"]["name"]},
        "status": {
            "conditions": pod_status.get("conditions") or [],
            "containerStatuses": pod_status.get("containerStatuses") or [],
        },
    }


def _child_key(namespace: str | None, labels: Mapping[str, str]) -> Key:
    return (namespace or "", labels[CLUSTER_LABEL])


def cc_index(**kwargs: Any) -> dict[Key, dict[str, Any]]:
    return {(kwargs["namespace"], kwargs["name"]): _trimmed(kwargs["body"], True)}


def deployment_index(**kwargs: Any) -> dict[Key, dict[str, Any]]:
    return {_child_key(kwargs["namespace"], kwargs["labels"]): _trimmed(kwargs["body"])}


def service_index(**kwargs: Any) -> dict[Key, dict[str, Any]]:
    return {_child_key(kwargs["namespace"], kwargs["labels"]): _trimmed(kwargs["body"])}


def budget_index(**kwargs: Any) -> dict[Key, dict[str, Any]]:
    return {_child_key(kwargs["namespace"], kwargs["labels"]): _trimmed(kwargs["body"])}


def pod_index(**kwargs: Any) -> dict[Key, dict[str, Any]]:
    return {_child_key(kwargs["namespace"], kwargs["labels"]): _pod_summary(kwargs["body"])}


def observed(key: Key, kwargs: Mapping[str, Any]) -> status.Observed:
    """The children of one CoreCluster, from the indexes kopf passes to every handler."""
    name = key[1]
    deployments = {
        d["metadata"]["labels"].get(MODE_LABEL, ""): d
        for d in kwargs["deployment_index"].get(key, ())
        if d["metadata"]["name"].startswith(f"{name}-")
    }
    service = next(
        (s for s in kwargs["service_index"].get(key, ()) if s["metadata"]["name"] == name), None
    )
    budget = next(
        (b for b in kwargs["budget_index"].get(key, ()) if b["metadata"]["name"] == name), None
    )
    return status.Observed(
        deployments=deployments,
        service=service,
        disruption_budget=budget,
        pods=list(kwargs["pod_index"].get(key, ())),
    )


def _version(body: Mapping[str, Any]) -> int:
    try:
        return int(body["metadata"].get("resourceVersion", "0"))
    except ValueError:
        return 0


def snapshot(
    key: Key, kwargs: Mapping[str, Any], body: Mapping[str, Any] | None = None
) -> Snapshot:
    """A reader of the newest CoreCluster and children, for when the reconcile gets its turn.

    kopf's indexes are live views, so reading them later gives later state;
    ``body`` (what a handler was called with) is used if the index is older.
    """

    def take() -> tuple[Mapping[str, Any] | None, status.Observed]:
        candidates = [*kwargs["cc_index"].get(key, ()), *([body] if body is not None else [])]
        newest = max(candidates, key=_version, default=None)
        return newest, observed(key, kwargs)

    return take


def _reconciler(memo: kopf.Memo) -> Reconciler:
    reconciler: Reconciler = memo["reconciler"]
    return reconciler


async def on_startup(**kwargs: Any) -> None:
    """Tune kopf, connect to the API and make sure the peering object exists."""
    settings: kopf.OperatorSettings = kwargs["settings"]
    memo: kopf.Memo = kwargs["memo"]
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
    scope = ", ".join(ours.namespaces) if ours.namespaces else "all namespaces"
    log.info(
        "watching CoreClusters in %s; default worker image %s; %s",
        scope,
        ours.worker_image,
        f"peering {ours.peering!r} with priority {ours.priority}"
        if ours.peering
        else "standalone (no peering)",
    )


async def on_cleanup(**kwargs: Any) -> None:
    if "reconciler" in kwargs["memo"]:
        await _reconciler(kwargs["memo"]).close()


async def on_corecluster(**kwargs: Any) -> None:
    """Create, update, resume: reconcile, and let kopf retry what may pass.

    An apply refused for a reason outside the spec (RBAC, quota, admission)
    is retried every resync interval, since someone may fix the cause; a
    spec the operator cannot use waits for the next change of the spec.
    """
    body: kopf.Body = kwargs["body"]
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    try:
        outcome = await _reconciler(kwargs["memo"]).reconcile(key, snapshot(key, kwargs, body))
    except KubeError as exc:
        outcome = Outcome(exc.message, exc.transient)
    if outcome.error is None:
        return
    if outcome.invalid:
        raise kopf.PermanentError(outcome.error)
    ours: Settings = kwargs["memo"]["settings"]
    delay = TRANSIENT_DELAY if outcome.transient else ours.resync_seconds
    raise kopf.TemporaryError(outcome.error, delay=delay)


async def on_corecluster_event(**kwargs: Any) -> None:
    """Forget a deleted CoreCluster; its children go by their ownerReferences."""
    namespace, name, memo = kwargs["namespace"], kwargs["name"], kwargs["memo"]
    if kwargs["type"] == "DELETED" and "reconciler" in memo:
        _reconciler(memo).forget((namespace, name))
        log.info("%s/%s: deleted; Kubernetes removes its children", namespace, name)


async def on_child_event(**kwargs: Any) -> None:
    """A child changed or vanished: reconcile its CoreCluster (drift and status)."""
    memo = kwargs["memo"]
    if "reconciler" not in memo:
        return
    key = _child_key(kwargs["namespace"], kwargs["labels"])
    if not kwargs["cc_index"].get(key):
        return  # its CoreCluster is gone; garbage collection removes the child
    try:
        await _reconciler(memo).reconcile_soon(key, snapshot(key, kwargs))
    except KubeError as exc:
        log.warning("%s/%s: reconcile failed: %s", *key, exc.message)


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach every handler to ``registry``."""
    # kopf logs in with the same library and the same rules as kube.py
    # (in-cluster, else KUBECONFIG), whichever other clients are installed.
    kopf.on.login(registry=registry)(kopf.login_via_async_client)
    kopf.on.startup(registry=registry)(on_startup)
    kopf.on.cleanup(registry=registry)(on_cleanup)
    kopf.index(*CORECLUSTERS, registry=registry)(cc_index)
    kopf.index(*CHILDREN["deployments"], labels=OURS, registry=registry)(deployment_index)
    kopf.index(*CHILDREN["services"], labels=OURS, registry=registry)(service_index)
    kopf.index(*CHILDREN["budgets"], labels=OURS, registry=registry)(budget_index)
    kopf.index(*CHILDREN["pods"], labels=OURS, registry=registry)(pod_index)
    for cause in (kopf.on.create, kopf.on.update, kopf.on.resume):
        cause(*CORECLUSTERS, registry=registry, id="reconcile")(on_corecluster)
    kopf.on.event(*CORECLUSTERS, registry=registry)(on_corecluster_event)
    for resource in CHILDREN.values():
        kopf.on.event(*resource, labels=OURS, registry=registry)(on_child_event)
