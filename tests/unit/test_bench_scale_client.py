"""The scale benchmark's judgement of a rollout under way (bench/scale/client.py).

The settled series of `make bench-scale` waits for it before every change,
so a wrong answer either measures changes during rollouts again (False too
early) or never starts the next change (True forever).
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.scale.client import rolling_out


def deployment(**status: int) -> dict[str, Any]:
    """A Deployment of 10 replicas at generation 2, rolled out but for `status`."""
    done = {
        "observedGeneration": 2,
        "replicas": 10,
        "updatedReplicas": 10,
        "availableReplicas": 10,
    }
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": 10},
        "status": done | status,
    }


def test_a_finished_rollout_is_not_rolling_out() -> None:
    assert not rolling_out(deployment())


@pytest.mark.parametrize(
    "status",
    [
        {"observedGeneration": 1},  # the controller has not seen the new spec yet
        {"updatedReplicas": 7, "replicas": 10},  # new pods still to come
        {"replicas": 13},  # old pods still there beside the new ones
        {"availableReplicas": 8},  # new pods not available yet
    ],
)
def test_each_unfinished_part_is_rolling_out(status: dict[str, int]) -> None:
    assert rolling_out(deployment(**status))


def test_a_new_deployment_without_status_is_rolling_out() -> None:
    assert rolling_out({"metadata": {"generation": 1}, "spec": {"replicas": 3}})
