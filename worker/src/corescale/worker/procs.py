"""Process plumbing that the standard library does not wrap: parent-death signals, exit statuses."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import signal

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def set_parent_death_signal(signum: int) -> bool:
    """Asks Linux to send `signum` to this process when its parent dies (prctl PR_SET_PDEATHSIG).

    Returns False where prctl is not available; the worker's getppid check in
    its heartbeat covers that case, only more slowly.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        result = libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError) as exc:
        log.debug("prctl is not available: %s", exc)
        return False
    if result != 0:
        log.debug("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
        return False
    return True


def release_free_memory() -> None:
    """Gives the heap that start-up used and freed back to the kernel (glibc malloc_trim).

    Importing aiohttp and building the app leave several MB of freed but
    still mapped heap behind; on a one-CPU pod that runs one small process,
    that is a noticeable part of its memory.
    """
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError) as exc:
        log.debug("malloc_trim is not available: %s", exc)


def describe_status(status: int) -> str:
    """A wait status as a person reads it: 'exit code 3' or 'signal SIGKILL'."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"
