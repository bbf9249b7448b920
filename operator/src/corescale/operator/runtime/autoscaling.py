"""Wiring between the autoscaler's loop and the rest of the operator.

:func:`targets` tells the loop which CoreClusters to scrape, read from the
same stores the reconciles read (no API call per round), and :func:`applier`
turns a decision into a scheduled reconcile of that CoreCluster, which
writes the Deployment, the status and the event like any other change.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from corescale.operator.api import fields, spec
from corescale.operator.api.names import MODE_LABEL
from corescale.operator.autoscaler import ownership
from corescale.operator.autoscaler.decision import Decision
from corescale.operator.autoscaler.gather import Key, Pod, Target
from corescale.operator.runtime.own_writes import version
from corescale.operator.runtime.reconcile import Reconciler

log = logging.getLogger(__name__)


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


Parsed = dict[Key, tuple[str, spec.CoreClusterSpec | None]]
"""Each autoscaled CoreCluster's spec as last parsed, by the resourceVersion
it was parsed at (None: refused). The loop asks for its targets every
second, and parsing a thousand specs that did not change costs a few
percent of a CPU for nothing."""


def _parse(
    key: Key, body: Mapping[str, Any], default_image: str, parsed: Parsed
) -> spec.CoreClusterSpec | None:
    at = version(body)
    known = parsed.get(key)
    if known is not None and known[0] == at:
        return known[1]
    try:
        wanted: spec.CoreClusterSpec | None = spec.parse(body.get("spec"), default_image)
    except fields.SpecError:
        wanted = None  # the reconcile reports it
    parsed[key] = (at, wanted)
    return wanted


def targets(
    coreclusters: Iterable[tuple[Key, Mapping[str, Any]]],
    pod_index: Mapping[Key, Any],
    reconciler: Reconciler,
    default_image: str,
    parsed: Parsed,
) -> dict[Key, Target]:
    """Every autoscaled CoreCluster with its ready, addressable pods."""
    found: dict[Key, Target] = {}
    bodies = dict(coreclusters)
    for key in set(parsed) - set(bodies):
        del parsed[key]
    for key, body in bodies.items():
        raw = body.get("spec") or {}
        if not raw.get("autoscaling") or body["metadata"].get("deletionTimestamp"):
            parsed.pop(key, None)
            continue
        wanted = _parse(key, body, default_image, parsed)
        if wanted is None or wanted.autoscaling is None:
            continue
        pods = tuple(
            Pod(
                pod["metadata"]["name"],
                pod["status"]["podIP"],
                wanted.workers_per_pod if pod["metadata"].get("mode") == "prefork" else 1,
            )
            for pod in pod_index.get(key, ())
            if _ready(pod)
            and pod.get("status", {}).get("podIP")
            and not pod["metadata"].get("deletionTimestamp")
        )
        current = reconciler.autoscaled_replicas(key, body, wanted)
        found[key] = Target(wanted.autoscaling, wanted.port, current, pods)
    return found


def applier(
    reconciler: Reconciler, schedule: Callable[[Key], None]
) -> Callable[[Key, Decision, Target], Awaitable[None]]:
    """What the loop calls with each round's decision: a new count is handed to the
    reconciler and its reconcile scheduled like any other (the same wait for the
    children's lists, the same retry), never awaited, so that one slow API call
    never delays the next round for every other CoreCluster."""

    async def act(key: Key, decision: Decision, target: Target) -> None:
        if decision.replicas == target.current:
            return
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        record = ownership.Record(now, target.current, decision.replicas, decision.reason)
        reconciler.autoscaled(key, decision.replicas, record, decision.load)
        schedule(key)

    return act


def pod_summary(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the reconcile (status.pod_problems) and the autoscaler read of a pod,
    so thousands of pods cost little memory."""
    metadata = body["metadata"]
    pod_status = body.get("status") or {}
    return {
        "metadata": {
            "name": metadata["name"],
            "mode": (metadata.get("labels") or {}).get(MODE_LABEL, ""),
            "deletionTimestamp": metadata.get("deletionTimestamp"),
        },
        "spec": {"nodeName": (body.get("spec") or {}).get("nodeName")},
        "status": {
            "conditions": pod_status.get("conditions") or [],
            "containerStatuses": pod_status.get("containerStatuses") or [],
            "podIP": pod_status.get("podIP"),
        },
    }
