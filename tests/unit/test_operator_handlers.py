"""The wiring: which handlers exist, and how indexed children become Observed."""

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from corescale.operator.decide import plan
from corescale.operator.decide.status import Observed
from corescale.operator.runtime import autoscaling, handlers
from corescale.operator.runtime.childwatch import ChildStore


def _obj(name: str, **labels: str) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": labels}}


def test_register_wires_every_trigger() -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    # kopf watches the CoreClusters alone; the children are childwatch.py's.
    assert {h.id for h in registry._indexing.get_all_handlers()} == {"cc_index"}
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
    indexes = {
        "deployment_index": {
            key: [
                _obj("hello-pods", **{"corescale.io/mode": "pods"}),
                _obj("hello-prefork", **{"corescale.io/mode": "prefork"}),
                _obj("someone-elses", **{"corescale.io/mode": "pods"}),
            ]
        },
        "service_index": {key: [_obj("other"), _obj("hello")]},
        "budget_index": {},
        "pod_index": {key: [_obj("hello-pods-1"), _obj("hello-pods-2")]},
        "slice_index": {
            key: [
                {"metadata": {"name": "hello-x1", "service": "hello"}},
                {"metadata": {"name": "other-x1", "service": "other"}},
            ]
        },
    }
    seen = handlers.observed(key, indexes)
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
    assert "managedFields" not in handlers._trimmed(body)["metadata"]
    kept = handlers._trimmed(body, True)["metadata"]["managedFields"]
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


class _Synced:
    """A child watch whose store has been listed (all _run waits for)."""

    def __init__(self) -> None:
        self.store = ChildStore(dict)
        self.store.synced.set()


class _Broken:
    """A reconciler with a bug: every run raises."""

    def __init__(self) -> None:
        self.runs = 0

    async def reconcile_soon(self, key: handlers.Key, take: object) -> None:
        self.runs += 1
        raise RuntimeError("boom")


def test_an_unexpected_error_is_logged_once_and_retried_at_the_resync(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """kopf's event handler does not retry; the operator must, or the CoreCluster waits
    for its next event."""
    broken = _Broken()
    memo: dict[str, Any] = {
        "child_watches": {"pods": _Synced()},
        "reconciler": broken,
        "said": {},
        "retries": {},
        "settings": SimpleNamespace(resync_seconds=3600.0),
    }
    key = ("shop", "hello")

    async def twice() -> float:
        await handlers._run(memo, key, lambda: (None, Observed()))  # type: ignore[arg-type]
        await handlers._run(memo, key, lambda: (None, Observed()))  # type: ignore[arg-type]
        retry = memo["retries"][key]
        delay: float = retry.when() - asyncio.get_running_loop().time()
        retry.cancel()
        return delay

    with caplog.at_level(logging.ERROR, logger="corescale.operator.runtime.handlers"):
        delay = asyncio.run(twice())
    assert broken.runs == 2
    assert 3500 < delay <= 3600
    failures = [r for r in caplog.records if "unexpected RuntimeError: boom" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
