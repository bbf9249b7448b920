"""What the prefork master does when a worker dies without being asked to.

A pure function of the death and the recent crashes, so that the policy can
be tested without forking anything:

* a worker that exits with code 2 or 3 before it was ever ready failed to
  boot (its factory raised, its port is taken): every new worker would fail
  the same way, so the master stops with exit code 3 instead of hiding it
  behind restarts;
* otherwise the worker is replaced, at once the first time and then after a
  doubling backoff (BACKOFF_FIRST, capped at BACKOFF_MAX), counting the
  crashes of the last CRASH_WINDOW seconds;
* CRASH_LIMIT crashes within CRASH_WINDOW seconds are a crash loop: the
  master stops with exit code 4;
* a ready worker that exits with code 0 was stopped by a signal someone sent
  it alone (a SIGTERM to its pid): it drained like any stopping worker, so it
  is replaced at once and is not a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from corescale.worker.errors import ExitCode

CRASH_LIMIT = 5
CRASH_WINDOW = 60.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0


class Verdict(NamedTuple):
    """The decision: halt the master with ``halt``, or replace the worker after ``delay``."""

    halt: ExitCode | None
    delay: float
    crashes: tuple[float, ...]
    """The crash times to remember for the next death (those within CRASH_WINDOW)."""
    crash: bool = True
    """False for a clean stop: no restart is counted and no backoff applies."""

    @property
    def counted(self) -> bool:
        """Whether the death counts as a crash (a restart), not a boot failure."""
        return self.halt is not ExitCode.BOOT_FAILURE


def after_death(
    *, was_ready: bool, exit_code: int, crashes: Sequence[float], now: float
) -> Verdict:
    """The verdict on a worker that died unasked at ``now``, after ``crashes`` earlier ones."""
    if not was_ready and exit_code in (ExitCode.USAGE, ExitCode.BOOT_FAILURE):
        return Verdict(ExitCode.BOOT_FAILURE, 0.0, tuple(crashes))
    if was_ready and exit_code == ExitCode.OK:
        return Verdict(None, 0.0, tuple(crashes), crash=False)
    recent = (*(t for t in crashes if t >= now - CRASH_WINDOW), now)
    if len(recent) >= CRASH_LIMIT:
        return Verdict(ExitCode.CRASH_LOOP, 0.0, recent)
    delay = 0.0 if len(recent) == 1 else BACKOFF_FIRST * 2 ** (len(recent) - 2)
    return Verdict(None, min(delay, BACKOFF_MAX), recent)
