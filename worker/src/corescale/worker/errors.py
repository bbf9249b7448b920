"""Exit codes and the errors that map onto them.

The codes are part of the interface (docs/contract.md): the operator and the
people reading `kubectl get pods` tell a bad command line (2) from an app that
cannot start (3) and from a prefork master that gave up on crashing workers
(4), so each failure must leave through exactly one of them.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """How the process ended; values fixed by docs/contract.md."""

    OK = 0
    USAGE = 2
    BOOT_FAILURE = 3
    CRASH_LOOP = 4


class WorkerError(Exception):
    """A failure with a message meant for a person and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.BOOT_FAILURE


class UsageError(WorkerError):
    """The command line or a CORESCALE_* variable is wrong."""

    exit_code = ExitCode.USAGE


class AppImportError(WorkerError):
    """APP names something that cannot be imported or is not a factory."""

    exit_code = ExitCode.USAGE


class BootError(WorkerError):
    """The app could not be started: the factory raised, or the port is taken."""

    exit_code = ExitCode.BOOT_FAILURE
