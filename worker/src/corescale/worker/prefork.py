"""Prefork mode: a master that binds once and keeps N forked workers serving.

The master never serves requests and never runs an event loop. Signal
handlers only append to a queue and wake the main loop through a self-pipe
(`signal.set_wakeup_fd`); the loop then does everything in one place and one
order: handle signals, reap children, notice ready workers, kill stuck ones,
and start or retire workers until the count is right.

Worker life and the signals (docs/worker.md has the table):

* a worker is ready when its shared-memory slot says so; it writes a byte to
  a pipe the master watches, so readiness is noticed at once;
* a worker that dies unasked is replaced, or the master stops, as the pure
  policy of restarts.py decides: at once the first time, then with a
  doubling backoff; a crash loop stops the master with exit code 4, and a
  worker that failed to boot stops it with exit code 3;
* a worker whose heartbeat (written by its event loop into its slot) is older
  than the heartbeat timeout is sent SIGABRT (faulthandler prints where its
  loop was stuck) and SIGKILL shortly after;
* SIGTERM/SIGINT drain every worker and SIGKILL the ones still there after
  drain delay + shutdown timeout; SIGQUIT stops them fast; SIGHUP starts one
  new worker, waits until it is ready, retires one old one, and so on;
  SIGTTIN/SIGTTOU add or retire one worker.
* As PID 1 in a container the master also reaps orphans: it waits for any
  child, not only its workers.
"""

from __future__ import annotations

import collections
import contextlib
import faulthandler
import gc
import logging
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass
from types import FrameType

from corescale.worker import loops, restarts
from corescale.worker.config import MAX_WORKERS, Config
from corescale.worker.errors import ExitCode
from corescale.worker.loader import Factory
from corescale.worker.procs import describe_status, set_parent_death_signal
from corescale.worker.scoreboard import MAX_SLOTS, Scoreboard, SlotState
from corescale.worker.serving import ServingProcess

log = logging.getLogger(__name__)

MASTER_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
ABORT_GRACE = 2.0
FAST_STOP_GRACE = 5.0
STOP_GRACE = 5.0
TICK = 1.0


@dataclass
class Worker:
    """The master's record of one forked worker."""

    pid: int
    slot: int
    started: float
    ready: bool = False
    retiring: bool = False
    deadline: float | None = None
    aborted_at: float | None = None


class Master:
    """Keeps `workers` processes serving `sock`; run() returns the exit code."""

    def __init__(
        self,
        config: Config,
        factory: Factory,
        sock: socket.socket,
        workers: int,
    ) -> None:
        self._config = config
        self._factory = factory
        self._sock = sock
        self._target = workers
        self._pid = os.getpid()
        self._board = Scoreboard(config.metrics_dir)
        self._workers: dict[int, Worker] = {}
        self._signals: collections.deque[int] = collections.deque()
        self._crashes: tuple[float, ...] = ()
        self._respawn_at = 0.0
        self._to_replace: list[int] = []
        self._replacement: int | None = None
        self._exit_code: ExitCode | None = None
        self._deadline = float("inf")
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._notify_r, self._notify_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # -- the main loop -----------------------------------------------------

    def run(self) -> ExitCode:
        """Starts the workers and supervises them until the master stops."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in MASTER_SIGNALS}
        old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        log.info(
            "prefork master pid %d: %d workers on %s (accept: %s)",
            self._pid,
            self._target,
            self._config.bind,
            self._config.accept.value,
        )
        # Objects that exist now are shared copy-on-write with every worker;
        # frozen, the workers' garbage collector leaves them alone instead of
        # writing to (and so copying) every page that holds one.
        gc.collect()
        gc.freeze()
        try:
            return self._supervise()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in (self._wake_r, self._wake_w, self._notify_r, self._notify_w):
                os.close(fd)
            self._board.close()
            self._sock.close()

    def _supervise(self) -> ExitCode:
        while True:
            now = time.monotonic()
            self._handle_signals(now)
            self._reap(now)
            if self._exit_code is not None:
                if not self._workers:
                    log.info("master stopped (exit code %d)", self._exit_code)
                    return self._exit_code
                self._enforce_deadline(now)
            else:
                self._notice_ready()
                self._check_heartbeats(now)
                self._maintain(now)
            self._board.set_workers(len(self._workers))
            self._board.set_master_cpu(time.process_time())
            self._sleep(self._next_wake(now))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _next_wake(self, now: float) -> float:
        wake = TICK
        if self._respawn_at > now:
            wake = min(wake, self._respawn_at - now)
        if self._deadline < float("inf"):
            wake = min(wake, max(0.0, self._deadline - now))
        return max(wake, 0.01)

    def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(InterruptedError):
            select.select([self._wake_r, self._notify_r], [], [], seconds)
        for fd in (self._wake_r, self._notify_r):
            with contextlib.suppress(BlockingIOError):
                while os.read(fd, 4096):
                    pass

    # -- signals -----------------------------------------------------------

    def _handle_signals(self, now: float) -> None:
        while self._signals:
            signum = self._signals.popleft()
            if signum == signal.SIGCHLD:
                continue
            if signum in (signal.SIGUSR1, signal.SIGUSR2):
                log.info("%s ignored", signal.Signals(signum).name)
                continue
            name = signal.Signals(signum).name
            if signum in (signal.SIGTERM, signal.SIGINT):
                if self._exit_code is None:
                    log.info("%s: draining the workers", name)
                    self._board.set_draining()
                    grace = self._config.drain_delay + self._config.shutdown_timeout + STOP_GRACE
                    self._stop(ExitCode.OK, signal.SIGTERM, now + grace)
                    # No worker will be started any more: once the last one
                    # stops accepting, the port must refuse connections
                    # rather than queue them for nobody.
                    self._sock.close()
                elif signum == signal.SIGTERM:
                    # The same stop again: a SIGTERM to the whole process
                    # group, or an init and a supervisor both relaying it.
                    log.info("SIGTERM again: already draining")
                else:
                    log.info("%s again: stopping the workers fast", name)
                    self._stop(self._exit_code, signal.SIGQUIT, now + FAST_STOP_GRACE)
            elif signum == signal.SIGQUIT:
                log.info("SIGQUIT: stopping the workers fast")
                self._stop(self._exit_code or ExitCode.OK, signal.SIGQUIT, now + FAST_STOP_GRACE)
            elif self._exit_code is not None:
                log.info("%s ignored: the master is stopping", name)
            elif signum == signal.SIGHUP:
                self._to_replace = [w.pid for w in self._workers.values() if not w.retiring]
                log.info("SIGHUP: replacing %d workers one by one", len(self._to_replace))
            elif signum == signal.SIGTTIN:
                self._target = min(MAX_WORKERS, self._target + 1)
                log.info("SIGTTIN: %d workers", self._target)
            elif signum == signal.SIGTTOU:
                self._target = max(1, self._target - 1)
                log.info("SIGTTOU: %d workers", self._target)

    def _stop(self, code: ExitCode, signum: int, deadline: float) -> None:
        self._exit_code = code
        self._deadline = min(self._deadline, deadline)
        self._to_replace = []
        for worker in self._workers.values():
            self._kill(worker.pid, signum)

    def _halt(self, code: ExitCode, now: float) -> None:
        """Stops everything because of a failure that restarting would not fix."""
        self._stop(code, signal.SIGQUIT, now + FAST_STOP_GRACE)

    def _enforce_deadline(self, now: float) -> None:
        if now < self._deadline:
            return
        log.warning(
            "%d workers did not stop in time; killing them: %s",
            len(self._workers),
            ", ".join(str(pid) for pid in self._workers),
        )
        for pid in self._workers:
            self._kill(pid, signal.SIGKILL)
        self._deadline = float("inf")

    @staticmethod
    def _kill(pid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    # -- children ----------------------------------------------------------

    def _reap(self, now: float) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self._workers.pop(pid, None)
            if worker is None:
                log.debug("reaped orphan pid %d (%s)", pid, describe_status(status))
                continue
            self._board.release(worker.slot, usage.ru_utime + usage.ru_stime)
            self._on_exit(worker, status, now)

    def _on_exit(self, worker: Worker, status: int, now: float) -> None:
        how = describe_status(status)
        lived = now - worker.started
        if self._replacement == worker.pid:
            self._replacement = None
        if worker.pid in self._to_replace:
            self._to_replace.remove(worker.pid)
        if self._exit_code is not None or worker.retiring:
            log.info("worker pid %d (slot %d) stopped (%s)", worker.pid, worker.slot, how)
            return
        verdict = restarts.after_death(
            was_ready=worker.ready,
            exit_code=os.waitstatus_to_exitcode(status),
            crashes=self._crashes,
            now=now,
        )
        if not verdict.crash:
            log.info(
                "worker pid %d (slot %d) stopped on a signal of its own (%s); replacing it",
                worker.pid,
                worker.slot,
                how,
            )
            return
        if not verdict.counted:
            log.error(
                "worker pid %d failed to boot (%s); stopping, since every new worker would "
                "fail the same way: see the error above",
                worker.pid,
                how,
            )
            self._halt(ExitCode.BOOT_FAILURE, now)
            return
        self._board.add_restart()
        self._crashes = verdict.crashes
        if verdict.halt is not None:
            log.error(
                "crash loop: %d workers died within %.0fs (the last: pid %d, %s); giving up",
                len(self._crashes),
                restarts.CRASH_WINDOW,
                worker.pid,
                how,
            )
            self._halt(verdict.halt, now)
            return
        delay = verdict.delay
        self._respawn_at = max(self._respawn_at, now + delay)
        log.warning(
            "worker pid %d (slot %d) died (%s) after %.1fs; replacing it in %.1fs",
            worker.pid,
            worker.slot,
            how,
            lived,
            delay,
        )

    def _notice_ready(self) -> None:
        for worker in self._workers.values():
            if worker.ready or self._board.state(worker.slot) is not SlotState.READY:
                continue
            worker.ready = True
            log.info(
                "worker pid %d (slot %d) ready in %.2fs",
                worker.pid,
                worker.slot,
                time.monotonic() - worker.started,
            )
            if worker.pid == self._replacement:
                self._replacement = None
                old = self._workers.get(self._to_replace.pop(0)) if self._to_replace else None
                if old is not None:
                    self._retire(old)
                if not self._to_replace:
                    log.info("SIGHUP: all workers replaced")

    def _check_heartbeats(self, now: float) -> None:
        timeout = self._config.heartbeat_timeout
        for worker in self._workers.values():
            if worker.deadline is not None and now > worker.deadline:
                log.warning("worker pid %d did not finish retiring in time; killing it", worker.pid)
                self._kill(worker.pid, signal.SIGKILL)
                worker.deadline = None
            elif worker.aborted_at is not None:
                if now - worker.aborted_at > ABORT_GRACE:
                    self._kill(worker.pid, signal.SIGKILL)
            elif now - self._board.heartbeat(worker.slot) > timeout:
                log.error(
                    "worker pid %d (slot %d) missed its heartbeat for %.0fs: its event loop is "
                    "blocked; killing it",
                    worker.pid,
                    worker.slot,
                    timeout,
                )
                worker.aborted_at = now
                self._kill(worker.pid, signal.SIGABRT)

    def _maintain(self, now: float) -> None:
        self._to_replace = [
            pid
            for pid in self._to_replace
            if pid in self._workers and not self._workers[pid].retiring
        ]
        # One replacement at a time, and only once the worker it replaced
        # has gone: a SIGHUP then uses one metrics slot more than the workers.
        retiring = any(w.retiring for w in self._workers.values())
        if (
            self._to_replace
            and self._replacement is None
            and not retiring
            and now >= self._respawn_at
        ):
            self._replacement = self._spawn(now)
        wanted = self._target + (1 if self._replacement is not None else 0)
        active = [w for w in self._workers.values() if not w.retiring]
        while len(active) < wanted and now >= self._respawn_at:
            if self._spawn(now) is None:
                break
            active = [w for w in self._workers.values() if not w.retiring]
        while len(active) > wanted:
            newest = max((w for w in active if w.pid != self._replacement), key=lambda w: w.started)
            self._retire(newest)
            active.remove(newest)

    def _retire(self, worker: Worker) -> None:
        log.info("retiring worker pid %d (slot %d)", worker.pid, worker.slot)
        worker.retiring = True
        worker.deadline = time.monotonic() + self._config.shutdown_timeout + STOP_GRACE + 1
        self._kill(worker.pid, signal.SIGUSR2)

    def _free_slot(self) -> int | None:
        taken = {w.slot for w in self._workers.values()}
        return next((i for i in range(MAX_SLOTS) if i not in taken), None)

    def _spawn(self, now: float) -> int | None:
        slot = self._free_slot()
        if slot is None:
            log.error("no free metrics slot for another worker (at most %d)", MAX_SLOTS)
            return None
        self._board.claim(slot, 0)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            log.error("cannot fork a worker: %s", exc)
            self._respawn_at = now + restarts.BACKOFF_FIRST
            return None
        if pid == 0:
            self._become_worker(slot)
        self._board.set_pid(slot, pid)
        self._workers[pid] = Worker(pid=pid, slot=slot, started=now)
        log.debug("started worker pid %d in slot %d", pid, slot)
        return pid

    def _become_worker(self, slot: int) -> None:
        """The child side of fork: never returns into the master's code."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in MASTER_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            for fd in (self._wake_r, self._wake_w, self._notify_r):
                os.close(fd)
            set_parent_death_signal(signal.SIGTERM)
            if os.getppid() != self._pid:
                os._exit(0)
            faulthandler.enable()
            self._board.set_pid(slot, os.getpid())
            server = ServingProcess(
                self._config,
                self._factory,
                self._sock,
                self._board,
                self._board.slot(slot),
                master_pid=self._pid,
                notify_fd=self._notify_w,
            )
            code = loops.run(server.run())
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("worker in slot %d crashed", slot)
        finally:
            logging.shutdown()
            os._exit(code)
