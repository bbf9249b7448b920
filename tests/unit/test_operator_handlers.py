"""The wiring: which handlers exist, what the stores keep, and the one reconcile path."""

import asyncio
import logging
from typing import Any

import kopf
import pytest

from corescale.operator.decide import plan
from corescale.operator.process import settings
from corescale.operator.runtime import autoscaling, handlers, stores
from corescale.operator.runtime.outcome import Outcome
from corescale.operator.runtime.own_writes import Key
from corescale.operator.runtime.scheduler import Scheduler
from tests.unit.fakekube import FakeKube


def _obj(name: str, **labels: str) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": labels}}


def test_register_wires_every_trigger() -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    # kopf watches the CoreClusters alone, into the operator's own store (no
    # kopf index: the store exists from startup on); the children are childwatch.py's.
    assert not registry._indexing.get_all_handlers()
    # No create/update/resume handlers: kopf would write its bookkeeping
    # annotations after every change. No timers or daemons: kopf would put a
    # finalizer on every CoreCluster.
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()
    assert [str(h.id) for h in registry._watching.get_all_handlers()] == ["reconcile"]
    every = [
        *registry._watching.get_all_handlers(),
        *registry._indexing.get_all_handlers(),
        *registry._changing.get_all_handlers(),
    ]
    assert {h.selector.any_name for h in every if h.selector} == {"coreclusters"}


def test_observed_picks_this_clusters_children_by_mode() -> None:
    key = ("shop", "hello")
    children: dict[str, dict[Key, list[Any]]] = {
        "deployments": {
            key: [
                _obj("hello-pods", **{"corescale.io/mode": "pods"}),
                _obj("hello-prefork", **{"corescale.io/mode": "prefork"}),
                _obj("someone-elses", **{"corescale.io/mode": "pods"}),
            ]
        },
        "services": {key: [_obj("other"), _obj("hello")]},
        "budgets": {},
        "pods": {key: [_obj("hello-pods-1"), _obj("hello-pods-2")]},
        "endpointslices": {
            key: [
                {"metadata": {"name": "hello-x1", "service": "hello"}},
                {"metadata": {"name": "other-x1", "service": "other"}},
            ]
        },
    }
    seen = stores.observed(key, children)
    assert {mode: d["metadata"]["name"] for mode, d in seen.deployments.items()} == {
        "pods": "hello-pods",
        "prefork": "hello-prefork",
    }
    assert seen.service is not None and seen.service["metadata"]["name"] == "hello"
    assert seen.disruption_budget is None
    assert len(seen.pods) == 2
    assert [found["metadata"]["name"] for found in seen.endpoint_slices] == ["hello-x1"]


def test_indexed_copies_drop_managed_fields_except_who_set_replicas() -> None:
    replicas = {
        "manager": "kubectl-client-side-apply",
        "operation": "Update",
        "time": "2026-11-30T10:00:00Z",
        "fieldsV1": {"f:spec": {"f:replicas": {}, "f:cpu": {}}, "f:metadata": {"f:labels": {}}},
    }
    status = {"manager": "corescale-operator", "fieldsV1": {"f:status": {"f:conditions": {}}}}
    body: dict[str, Any] = {
        "kind": "X",
        "metadata": {"name": "a", "managedFields": [replicas, status]},
    }
    assert "managedFields" not in stores.trimmed(body)["metadata"]
    kept = stores.trimmed(body, True)["metadata"]["managedFields"]
    assert kept == [
        {
            "manager": "kubectl-client-side-apply",
            "time": "2026-11-30T10:00:00Z",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        }
    ]
    assert plan.replicas_changed_by(kept) == plan.replicas_changed_by([replicas, status])
    assert body["metadata"]["managedFields"] == [replicas, status]


def test_pod_summary_keeps_only_what_status_and_the_autoscaler_read() -> None:
    pod = {
        "metadata": {"name": "p", "labels": {"a": "b", "corescale.io/mode": "prefork"}},
        "spec": {"containers": []},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled"}],
            "podIP": "10.244.0.9",
        },
    }
    assert autoscaling.pod_summary(pod) == {
        "metadata": {"name": "p", "mode": "prefork", "deletionTimestamp": None},
        "spec": {"nodeName": None},
        "status": {
            "conditions": [{"type": "PodScheduled"}],
            "containerStatuses": [],
            "podIP": "10.244.0.9",
        },
    }


class _Broken:
    """A reconciler with a bug: every run raises."""

    def __init__(self) -> None:
        self.runs = 0

    async def reconcile_soon(self, key: Key, take: object) -> Outcome:
        self.runs += 1
        raise RuntimeError("boom")


def test_an_unexpected_error_is_logged_once_and_retried_at_the_resync(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """kopf's event handler does not retry; the operator must, or the CoreCluster waits
    for its next event."""
    broken = _Broken()
    key = ("shop", "hello")

    async def twice() -> float:
        scheduler = Scheduler(settings.load({"CORESCALE_RESYNC_SECONDS": "3600"}), FakeKube())
        scheduler.reconciler = broken  # type: ignore[assignment]
        for store in scheduler.children.values():
            store.synced.set()
        scheduler.seen({"metadata": {"namespace": "shop", "name": "hello"}})
        await scheduler.reconcile(key)
        await scheduler.reconcile(key)
        retry = scheduler._retries[key]
        delay: float = retry.when() - asyncio.get_running_loop().time()
        retry.cancel()
        return delay

    with caplog.at_level(logging.ERROR, logger="corescale.operator.runtime.scheduler"):
        delay = asyncio.run(twice())
    assert broken.runs == 2
    assert 3500 < delay <= 3600
    failures = [r for r in caplog.records if "unexpected RuntimeError: boom" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
