"""A tiny init for single mode when the worker is PID 1 of a container.

PID 1 must reap the orphans the kernel reparents to it, or they stay zombies.
An event loop cannot do that safely in the same process: uvloop reserves
SIGCHLD, and a waitpid(-1) would steal the exit status of the app's own
subprocesses. So, as tini or dumb-init would, PID 1 forks the real server
as its only child, relays the stop signals to it, reaps every child, and
leaves with the server's exit code. It forks before aiohttp and the app are
imported (cli.py), so the init itself stays a small Python process instead
of a second copy of the server in the pod's memory. (The prefork master is
an init already: it waits for any child.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable
from types import FrameType

from corescale.worker.procs import set_parent_death_signal

log = logging.getLogger(__name__)

RELAYED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1)


def run_as_init(serve: Callable[[], int]) -> int:
    """Runs `serve` in a child and reaps until it ends; its exit code (128+N for signal N)."""
    child = os.fork()
    if child == 0:
        code = 1
        try:
            set_parent_death_signal(signal.SIGKILL)
            code = serve()
        finally:
            logging.shutdown()
            os._exit(code)

    def relay(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in RELAYED:
        signal.signal(signum, relay)
    log.info("running as PID 1: serving in pid %d, reaping orphans", child)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code
        log.debug("reaped orphan pid %d", pid)
