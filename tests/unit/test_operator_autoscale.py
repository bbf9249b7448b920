"""The autoscaler's decision on recorded load traces: one sample a second, as
the gatherer takes them, fed through ``decide`` the way the operator does."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from corescale.operator.api.spec import Policy
from corescale.operator.autoscaler.decision import Decision, Sample, decide

POLICY = Policy(min_replicas=1, max_replicas=20, target_in_flight=4)


@dataclass
class Run:
    """The operator's loop over a trace: sample, decide, apply."""

    policy: Policy = POLICY
    replicas: int = 2
    start: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    history: list[tuple[float, int]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    last_down: float | None = None
    observed_since: float = 0.0

    def play(self, demand: Callable[[float], float | None], until: float) -> None:
        t = self.start
        while t < until:
            t += 1.0
            load = demand(t)
            if load is not None:
                self.samples.append(Sample(t, load, self.replicas))
            decision = decide(
                self.policy,
                self.samples,
                self.replicas,
                t,
                observed_since=self.observed_since,
                last_down=self.last_down,
            )
            self.decisions.append(decision)
            if decision.replicas != self.replicas:
                if decision.replicas < self.replicas:
                    self.last_down = t
                self.replicas = decision.replicas
                self.history.append((t, self.replicas))
        self.start = t

    def direction_changes(self) -> int:
        counts = [count for _, count in self.history]
        steps = [b - a for a, b in itertools.pairwise(counts)]
        signs = [1 if s > 0 else -1 for s in steps if s]
        return sum(1 for a, b in itertools.pairwise(signs) if a != b)


def test_a_step_that_doubles_the_load_is_decided_within_two_seconds() -> None:
    run = Run(replicas=4)
    run.play(lambda t: 16.0 if t <= 100 else 32.0, 110)
    first_up = next(t for t, count in run.history if count > 4)
    assert 100 < first_up <= 102
    assert run.replicas == 8


def test_steady_noisy_load_causes_no_direction_change() -> None:
    rng = random.Random(7)
    run = Run(replicas=5)
    run.play(lambda t: max(0.0, rng.gauss(19.6, 1.5)), 600)
    assert run.direction_changes() == 0
    assert 5 <= run.replicas <= 7


def test_a_short_spike_is_served_and_held_for_the_stable_window() -> None:
    run = Run(replicas=2)
    run.play(lambda t: 40.0 if 30 < t <= 33 else 6.0, 200)
    peak_time, peak = max(run.history, key=lambda h: h[1])
    assert peak >= 10
    assert 30 < peak_time <= 33
    counts = [2] + [count for _, count in run.history]
    downs = [t for (t, count), prev in zip(run.history, counts, strict=False) if count < prev]
    assert downs and downs[0] >= 33 + POLICY.down_window - 1
    assert run.replicas == 2


def test_scale_down_at_most_halves_and_waits_between_steps() -> None:
    run = Run(replicas=16)
    run.play(lambda t: 60.0 if t <= 10 else 0.0, 200)
    counts = [16] + [count for _, count in run.history]
    for before, after in itertools.pairwise(counts):
        if after < before:
            assert after >= math.ceil(before / 2)
    down_times = [t for (t, count), prev in zip(run.history, counts, strict=False) if count < prev]
    for a, b in itertools.pairwise(down_times):
        assert b - a >= POLICY.down_period
    assert run.replicas == 1


def test_a_ramp_is_followed_upwards_without_a_down_step() -> None:
    run = Run(replicas=1)
    run.play(lambda t: t * 0.5, 120)
    assert all(b > a for (_, a), (_, b) in zip(run.history, run.history[1:], strict=False))
    # Within the dead band of the load at the end (59.5 to 60 in flight).
    assert run.replicas >= math.ceil(60 / (4 * (1 + POLICY.tolerance)))


def test_oscillating_load_settles_at_its_peak_instead_of_following_it() -> None:
    run = Run(replicas=2)
    run.play(lambda t: 24.0 if int(t // 20) % 2 else 8.0, 600)
    assert run.direction_changes() == 0
    assert run.replicas == 6


def test_missing_metrics_are_never_read_as_zero_load() -> None:
    run = Run(replicas=6)
    run.play(lambda t: 24.0 if t <= 30 else None, 300)
    assert run.replicas == 6
    assert run.decisions[-1].reason.startswith("no metrics")


def test_min_and_max_hold_whatever_the_load() -> None:
    policy = Policy(min_replicas=2, max_replicas=5, target_in_flight=4)
    run = Run(policy=policy, replicas=3)
    run.play(lambda t: 400.0 if t <= 50 else 0.0, 300)
    assert max(count for _, count in run.history) == 5
    assert min(count for _, count in run.history) == 2
    assert decide(policy, [], 9, 0.0, observed_since=0.0).replicas == 5
    assert decide(policy, [], 0, 0.0, observed_since=0.0).replicas == 2


def test_scale_up_is_limited_per_decision() -> None:
    decision = decide(POLICY, [Sample(1.0, 400.0, 1)], 1, 1.0, observed_since=0.0)
    assert decision.replicas == 4


def test_an_operator_restart_waits_a_full_window_before_scaling_down() -> None:
    run = Run(replicas=8)
    run.play(lambda t: 30.0 if t <= 100 else 2.0, 120)
    assert run.replicas == 8
    # The operator restarts at t=120: the window it had is gone.
    restarted = Run(replicas=8, start=120.0, observed_since=120.0)
    restarted.play(lambda t: 2.0, 120.0 + POLICY.down_window - 1)
    assert restarted.replicas == 8
    restarted.play(lambda t: 2.0, 400)
    assert restarted.replicas == 1


def test_a_restart_still_scales_up_at_once() -> None:
    decision = decide(POLICY, [Sample(10.0, 40.0, 4)], 4, 10.0, observed_since=9.0)
    assert decision.replicas == 10
    assert decision.reason == "in flight 40.0 per 4 workers, target 4"
