"""Drift is put back, the operator survives restarts mid-change, and one bad
CoreCluster never holds up another."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.operator_helpers import (
    OperatorProcess,
    apply,
    condition,
    corecluster,
    events,
    get,
    items,
    wait_event,
    wait_ready,
)
from tests.kube import kubectl, wait_for

SELECTOR = "corescale.io/cluster=hello"
DRIFT_REPAIR_TIMEOUT = 30
"""'Within seconds': generous for a loaded machine, far below the 60 s resync."""


@pytest.mark.e2e
def test_edited_and_deleted_children_are_put_back(
    operator: OperatorProcess, namespace: str
) -> None:
    """At zero replicas, so that it needs no pod start and loads the node little."""
    apply(namespace, corecluster("hello", replicas=0))
    wait_ready(namespace, "hello", workers=0)

    kubectl("scale", "-n", namespace, "deployment/hello-pods", "--replicas=3")
    wait_for(
        "the Deployment's replicas to be put back",
        lambda: get(namespace, "deployment", "hello-pods")["spec"]["replicas"] == 0,
        timeout=DRIFT_REPAIR_TIMEOUT,
    )
    wait_event(namespace, "hello", "Repaired", "put back Deployment hello-pods")

    old_uid = get(namespace, "service", "hello")["metadata"]["uid"]
    kubectl("delete", "-n", namespace, "service/hello")
    wait_for(
        "the Service to be re-created",
        lambda: get(namespace, "service", "hello")["metadata"]["uid"] != old_uid,
        timeout=DRIFT_REPAIR_TIMEOUT,
    )
    wait_event(namespace, "hello", "Repaired", "re-created Service hello")

    kubectl("delete", "-n", namespace, "pdb/hello")
    wait_for(
        "the PodDisruptionBudget to be re-created",
        lambda: get(namespace, "pdb", "hello"),
        timeout=DRIFT_REPAIR_TIMEOUT,
    )
    wait_ready(namespace, "hello", workers=0)
    repairs = [e for e in events(namespace, "hello") if e["reason"] == "Repaired"]
    assert len(repairs) == 3, [e["message"] for e in repairs]  # one per drift, no echo


@pytest.mark.e2e
def test_operator_killed_mid_switch_converges_without_duplicates(
    operator: OperatorProcess, namespace: str
) -> None:
    apply(namespace, corecluster("hello", replicas=2))
    wait_ready(namespace, "hello", workers=2)

    apply(namespace, corecluster("hello", replicas=2, mode="prefork", workersPerPod=2))
    wait_for(
        "the switch to start",
        lambda: items(namespace, "deployments", SELECTOR + ",corescale.io/mode=prefork"),
        timeout=60,
    )
    operator.stop(signal.SIGKILL)
    # While it is down the spec moves on again.
    kubectl("scale", "-n", namespace, "corecluster/hello", "--replicas=4")
    operator.start()

    cc = wait_ready(namespace, "hello", workers=4)
    wait_for(
        "the old mode's Deployment to go",
        lambda: (
            [d["metadata"]["name"] for d in items(namespace, "deployments", SELECTOR)]
            == ["hello-prefork"]
        ),
        timeout=120,
    )
    assert cc["status"]["pods"] == 2
    for kind in ("services", "pdb"):
        assert [o["metadata"]["name"] for o in items(namespace, kind, SELECTOR)] == ["hello"]
    assert "Traceback" not in operator.log()


@pytest.mark.e2e
def test_a_bad_corecluster_is_degraded_and_does_not_hold_up_others(
    operator: OperatorProcess, namespace: str
) -> None:
    apply(
        namespace,
        corecluster("broken", image="corescale:not-on-this-node", imagePullPolicy="Never"),
    )
    apply(namespace, corecluster("hello", replicas=1))
    wait_ready(namespace, "hello", workers=1)

    def degraded() -> dict[str, str] | None:
        found = condition(get(namespace, "corecluster", "broken"), "Degraded")
        return found if found.get("status") == "True" else None

    found = wait_for("the broken CoreCluster to be Degraded", degraded, timeout=120)
    assert found["reason"] == "ErrImageNeverPull"
    assert "pod broken-pods-" in found["message"]
    assert condition(get(namespace, "corecluster", "broken"), "Ready")["status"] == "False"
    wait_event(namespace, "broken", "ErrImageNeverPull")
    assert operator.proc is not None and operator.proc.poll() is None
