"""Who owns the worker count while autoscaling, and what the status says."""

from __future__ import annotations

from corescale.operator.api.spec import Policy
from corescale.operator.autoscaler.ownership import Decisions, Record, clamp, ignored_replicas

POLICY = Policy(min_replicas=2, max_replicas=8)
KEY = ("shop", "orders")


def test_the_count_comes_from_the_newest_decision_then_the_status_then_the_spec() -> None:
    memory = Decisions()
    assert memory.replicas(KEY, POLICY, 1, {}) == 2  # spec.replicas 1, clamped to min
    assert memory.replicas(KEY, POLICY, 1, {"autoscaling": {"desiredReplicas": 5}}) == 5
    memory.decided(KEY, 7, Record("t", 5, 7, "why"), 27.5)
    assert memory.replicas(KEY, POLICY, 1, {"autoscaling": {"desiredReplicas": 5}}) == 7
    assert memory.reason(KEY) == "why"
    memory.forget(KEY)
    assert memory.replicas(KEY, POLICY, 12, {}) == 8
    assert memory.reason(KEY) is None


def test_the_status_keeps_the_last_decision_across_restarts() -> None:
    before = {
        "autoscaling": {
            "lastDecision": {"time": "t0", "from": 2, "to": 4, "reason": "r"},
            "observedInFlight": 15.0,
        }
    }
    fresh = Decisions()  # a restarted operator remembers nothing
    assert fresh.status(KEY, 4, 1, before) == {
        "desiredReplicas": 4,
        "specReplicas": 1,
        "lastDecision": {"time": "t0", "from": 2, "to": 4, "reason": "r"},
        "observedInFlight": 15.0,
    }
    fresh.decided(KEY, 6, Record("t1", 4, 6, "more"), 22.123)
    block = fresh.status(KEY, 6, 1, before)
    assert block["lastDecision"] == {"time": "t1", "from": 4, "to": 6, "reason": "more"}
    assert block["observedInFlight"] == 22.12


def test_a_spec_replicas_change_while_autoscaling_is_reported_once() -> None:
    status = {"autoscaling": {"specReplicas": 1}}
    assert ignored_replicas(1, status, 4, "kubectl scale") is None
    warning = ignored_replicas(9, status, 4, "kubectl scale")
    assert warning is not None
    assert warning.startswith("spec.replicas 1 -> 9 (kubectl scale) is ignored")
    assert "keeps 4 workers" in warning
    assert ignored_replicas(9, {}, 4, "x") is None  # first sight: nothing to compare


def test_clamp() -> None:
    assert [clamp(POLICY, n) for n in (0, 2, 5, 8, 9)] == [2, 2, 5, 8, 8]
