"""Several operator processes: one acts, the others wait, and a standby takes
over when the active one stops."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.operator_helpers import (
    OperatorProcess,
    apply,
    corecluster,
    wait_ready,
)
from tests.kube import kubectl, wait_for


@pytest.fixture
def pair(crds: None, namespace: str, tmp_path: Path) -> Iterator[tuple[OperatorProcess, ...]]:
    active = OperatorProcess(namespace, tmp_path / "active", CORESCALE_PEERING_PRIORITY="200")
    standby = OperatorProcess(namespace, tmp_path / "standby", CORESCALE_PEERING_PRIORITY="100")
    for process in (active, standby):
        process.log_dir.mkdir()
    try:
        active.start()
        standby.start()
        yield active, standby
    finally:
        standby.stop()
        active.stop()


@pytest.mark.e2e
def test_only_the_highest_priority_acts_and_a_standby_takes_over(
    pair: tuple[OperatorProcess, OperatorProcess], namespace: str
) -> None:
    active, standby = pair

    def peers() -> dict[str, object] | None:
        peering = json.loads(
            kubectl("get", "-n", namespace, "kopfpeering", "corescale", "-o", "json")
        )
        found: dict[str, object] = peering.get("status") or {}
        return found if len(found) == 2 else None

    wait_for("both operators in the KopfPeering", peers, timeout=60)

    apply(namespace, corecluster("hello", replicas=0))  # no pods: this is about the operators
    wait_ready(namespace, "hello", workers=0)
    assert f"{namespace}/hello: created Deployment hello-pods" in active.log()
    assert "hello:" not in standby.log()

    active.stop()  # a clean stop removes its peering record at once
    kubectl("scale", "-n", namespace, "corecluster/hello", "--replicas=1")
    wait_for(
        "the standby to take over",
        lambda: f"{namespace}/hello: scaled 0 -> 1 workers" in standby.log(),
        timeout=60,
    )
    deployment = json.loads(
        kubectl("get", "-n", namespace, "deployment", "hello-pods", "-o", "json")
    )
    assert deployment["spec"]["replicas"] == 1
    assert "scaled" not in active.log()


TAKEOVER_LIMIT = 15.0
"""Issue 16: a standby acts within 15 s of the active operator's unclean death."""


@pytest.mark.e2e
def test_a_standby_takes_over_within_15_s_of_the_active_one_being_killed(
    pair: tuple[OperatorProcess, OperatorProcess], namespace: str
) -> None:
    """SIGKILL, as a node loss: no cleanup, the dead peer's record stays behind."""
    active, standby = pair
    apply(namespace, corecluster("hello", replicas=0))
    wait_ready(namespace, "hello", workers=0)
    assert "hello:" not in standby.log()

    active.stop(signal.SIGKILL)
    killed = time.monotonic()
    kubectl("scale", "-n", namespace, "corecluster/hello", "--replicas=1")
    wait_for(
        "the standby to take over",
        lambda: f"{namespace}/hello: scaled 0 -> 1 workers" in standby.log(),
        timeout=60,
        interval=0.1,
    )
    took = time.monotonic() - killed
    sys.stderr.write(f"\nSIGKILL of the active operator -> the standby scaled: {took:.1f} s\n")
    assert took < TAKEOVER_LIMIT
