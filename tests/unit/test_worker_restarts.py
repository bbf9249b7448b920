"""The prefork restart policy: boot failures halt, crashes back off, crash loops halt."""

from __future__ import annotations

import pytest

from corescale.worker.errors import ExitCode
from corescale.worker.restarts import (
    CRASH_LIMIT,
    CRASH_WINDOW,
    after_death,
)


@pytest.mark.parametrize("code", [ExitCode.USAGE, ExitCode.BOOT_FAILURE])
def test_a_worker_that_never_became_ready_and_failed_to_boot_halts_the_master(code: int) -> None:
    verdict = after_death(was_ready=False, exit_code=code, crashes=[5.0], now=10.0)
    assert verdict.halt is ExitCode.BOOT_FAILURE
    assert not verdict.counted
    assert verdict.crashes == (5.0,)


def test_the_same_exit_code_after_being_ready_is_a_crash() -> None:
    verdict = after_death(was_ready=True, exit_code=ExitCode.BOOT_FAILURE, crashes=[], now=10.0)
    assert verdict.halt is None
    assert verdict.counted
    assert (verdict.delay, verdict.crashes) == (0.0, (10.0,))


def test_crashes_back_off_doubling() -> None:
    delays = []
    crashes: tuple[float, ...] = ()
    for second in range(CRASH_LIMIT - 1):
        verdict = after_death(was_ready=True, exit_code=1, crashes=crashes, now=float(second))
        assert verdict.halt is None
        delays.append(verdict.delay)
        crashes = verdict.crashes
    assert delays == [0.0, 0.5, 1.0, 2.0]


def test_crash_limit_within_the_window_is_a_crash_loop() -> None:
    crashes = tuple(float(t) for t in range(CRASH_LIMIT - 1))
    verdict = after_death(was_ready=True, exit_code=1, crashes=crashes, now=float(CRASH_LIMIT))
    assert verdict.halt is ExitCode.CRASH_LOOP
    assert verdict.counted
    assert len(verdict.crashes) == CRASH_LIMIT


def test_crashes_older_than_the_window_are_forgotten() -> None:
    old = tuple(float(t) for t in range(CRASH_LIMIT - 1))
    now = old[-1] + CRASH_WINDOW + 1
    verdict = after_death(was_ready=True, exit_code=1, crashes=old, now=now)
    assert verdict.halt is None
    assert (verdict.delay, verdict.crashes) == (0.0, (now,))


def test_a_ready_worker_that_exits_0_is_replaced_at_once_and_is_no_crash() -> None:
    verdict = after_death(was_ready=True, exit_code=0, crashes=[9.0], now=10.0)
    assert (verdict.halt, verdict.delay, verdict.crash) == (None, 0.0, False)
    assert verdict.crashes == (9.0,)
