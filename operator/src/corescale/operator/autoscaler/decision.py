"""The autoscaler's decision: a pure function of the load window, the policy,
the current worker count and the clock.

Why this shape, and not Knative's or the HPA's:

* Scale **up** on a short window (2 s by default) of the average number of
  requests in flight: a step that doubles the load is seen within one or two
  scrape rounds, as in Knative's panic mode, but without a mode to enter and
  leave, which is where Knative's users see oscillation.
* Scale **down** on the *peak* of a long stable window (60 s by default), as
  the HPA's stabilisation window does: any burst within the window holds the
  capacity it needed. Down steps are at most a halving and at least
  ``down_period`` apart.
* A dead band between the two: up needs the short average above
  ``current * target * (1 + tolerance)``; down needs the window's peak to fit
  the smaller count at ``target * (1 - tolerance)``. A steady load cannot
  cross both within one window, so it causes no direction change.
* Missing data never reads as zero load: without samples there is no scale
  up, and a scale down needs a window that was observed from start to end
  (after an operator restart the window starts empty, so the first scale
  down waits a full window; a scale up does not).

Counts here are worker processes, the unit of ``spec.replicas``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from corescale.operator.api.spec import Policy


@dataclass(frozen=True)
class Sample:
    """One scrape round of a CoreCluster.

    ``in_flight`` is the average number of requests in flight over the round,
    summed over its ready workers, already extrapolated from the workers that
    answered to all ready ones. A round in which no worker answered is not a
    sample at all.
    """

    time: float
    in_flight: float
    workers: int


@dataclass(frozen=True)
class Decision:
    """The worker count to run, and a sentence saying why."""

    replicas: int
    reason: str
    load: float | None


def _mean(samples: Sequence[Sample]) -> float:
    return sum(s.in_flight for s in samples) / len(samples)


def _describe(load: float, workers: int, target: float) -> str:
    return f"in flight {load:.1f} per {workers} workers, target {target:g}"


def decide(
    policy: Policy,
    samples: Sequence[Sample],
    current: int,
    now: float,
    *,
    observed_since: float,
    last_down: float | None = None,
) -> Decision:
    """The worker count for ``now``.

    ``samples`` are in time order; ``observed_since`` is when gathering for
    this CoreCluster began (an operator start, or autoscaling being turned
    on); ``last_down`` is when the last scale down was decided, if any.
    """
    low, high, target = policy.min_replicas, policy.max_replicas, policy.target_in_flight
    recent = [s for s in samples if now - policy.up_window < s.time <= now]
    load = _mean(recent) if recent else None
    if current < low:
        return Decision(low, f"below minReplicas {low}", load)
    if current > high:
        return Decision(high, f"above maxReplicas {high}", load)
    if load is None:
        return Decision(current, "no metrics in the last round: holding", None)

    if load > current * target * (1 + policy.tolerance) and current < high:
        wanted = math.ceil(load / target)
        step_cap = max(current + 1, math.ceil(current * policy.up_max_factor))
        replicas = min(high, step_cap, max(wanted, current + 1))
        return Decision(replicas, _describe(load, current, target), load)

    window = [s for s in samples if now - policy.down_window < s.time <= now]
    full_window = now - observed_since >= policy.down_window
    settled = last_down is None or now - last_down >= policy.down_period
    if current > low and window and full_window and settled:
        peak = max(s.in_flight for s in window)
        wanted = max(low, math.ceil(peak / (target * (1 - policy.tolerance))))
        if wanted < current:
            replicas = max(wanted, math.ceil(current / policy.down_max_factor))
            reason = (
                f"{_describe(load, current, target)}; peak {peak:.1f} "
                f"over the last {policy.down_window:g}s"
            )
            return Decision(replicas, reason, load)
    return Decision(current, _describe(load, current, target), load)
