"""The kopf handlers: thin wiring from kopf to the :class:`Scheduler`.

kopf logs in, watches the CoreClusters, keeps the peering object current and
calls three handlers: startup (builds the one :class:`State`), the one event
handler (every event of a CoreCluster) and cleanup. What a reconcile is, and
what else wakes one, is scheduler.py's. Handlers are registered by
:func:`register` rather than by decorators at import, so importing this
module has no side effects and the operator runs on its own registry.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from corescale.operator.api.names import CORECLUSTERS
from corescale.operator.runtime.apiclient import ApiKube, connect
from corescale.operator.runtime.kube import KubeError
from corescale.operator.runtime.outcome import TRANSIENT_DELAY
from corescale.operator.runtime.scheduler import Scheduler
from corescale.operator.runtime.state import State

log = logging.getLogger(__name__)


async def on_startup(settings: kopf.OperatorSettings, memo: State, **_: Any) -> None:
    """Tune kopf, connect to the API, make sure the peering object exists, start the parts."""
    ours = memo.settings
    # The operator posts its own events (events.py); kopf adds only its warnings and errors.
    settings.posting.level = logging.WARNING
    settings.peering.stealth = True
    settings.peering.lifetime = ours.peering_lifetime
    api = ApiKube(await connect())
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
    memo.started = Scheduler(ours, api)
    memo.started.start()
    scope = ", ".join(ours.namespaces) if ours.namespaces else "all namespaces"
    log.info(
        "watching CoreClusters in %s; default worker image %s; %s",
        scope,
        ours.worker_image,
        f"peering {ours.peering!r} with priority {ours.priority}"
        if ours.peering
        else "standalone (no peering)",
    )


async def on_cleanup(memo: State, **_: Any) -> None:
    """Stop the background work, then the API client."""
    if memo.started is not None:
        await memo.started.stop()


async def on_corecluster_event(type: str | None, body: kopf.Body, memo: State, **_: Any) -> None:
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
    scheduler = memo.scheduler
    if type == "DELETED":
        scheduler.deleted((body["metadata"]["namespace"], body["metadata"]["name"]))
        return
    await scheduler.reconcile(scheduler.seen(body))


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach every handler to ``registry``."""
    # kopf logs in with the same library and the same rules as apiclient.py
    # (in-cluster, else KUBECONFIG), whichever other clients are installed.
    kopf.on.login(registry=registry)(kopf.login_via_async_client)
    kopf.on.startup(registry=registry)(on_startup)
    kopf.on.cleanup(registry=registry)(on_cleanup)
    kopf.on.event(*CORECLUSTERS, registry=registry, id="reconcile")(on_corecluster_event)
