"""One serving process: the single-mode server, and each prefork worker.

Both go through the same life: build the app inside the event loop, serve,
and on a stop request leave in one of three ways:

* drain (SIGTERM; SIGINT in single mode): /readyz fails at once, the process
  keeps serving for the drain delay while Kubernetes removes the pod from
  its endpoints, every response says `Connection: close`; then it stops
  accepting and gives in-flight requests the shutdown timeout to finish.
  A second SIGINT cuts the delay short; a second SIGTERM is the same stop
  arriving twice (a process group's SIGTERM also comes through the prefork
  master) and changes nothing. In prefork /readyz follows the pod: a SIGTERM
  to one worker alone drains it while the pod stays ready.
* retire (SIGUSR2, from the prefork master on SIGHUP or SIGTTOU): the pod
  stays ready; the worker stops accepting at once (queued connections stay
  in the shared socket for the others), lets keep-alive clients finish one
  more request with `Connection: close`, then closes like a drain.
* fast (SIGQUIT): stop accepting and exit now; in-flight requests are cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import socket
from collections.abc import Callable

from aiohttp import web

from corescale.worker import accept, clienterrors
from corescale.worker.config import Config
from corescale.worker.connections import WorkerAppRunner, WorkerServer
from corescale.worker.errors import BootError, ExitCode
from corescale.worker.health import RequestGate, bootstrap_server
from corescale.worker.loader import Factory, build_app
from corescale.worker.procs import release_free_memory
from corescale.worker.scoreboard import Scoreboard, Slot, SlotState

log = logging.getLogger(__name__)

BEAT_SECONDS = 0.5
RETIRE_GRACE_SECONDS = 1.0


class Stop(enum.Enum):
    """The ways a serving process is asked to end (see the module docstring)."""

    DRAIN = "drain"
    INTERRUPT = "interrupt"
    """SIGINT in single mode: a drain, and a second one ends the drain delay."""
    RETIRE = "retire"
    FAST = "fast"


class ServingProcess:
    """Serves the app on a listening socket until asked to stop.

    `master_pid` is set for a prefork worker: it then serves with the
    configured accept strategy, ignores SIGINT (the master relays the
    terminal's Ctrl-C), retires on SIGUSR2, tells the master it is ready
    through `notify_fd`, and stops when the master is gone.
    """

    def __init__(
        self,
        config: Config,
        factory: Factory,
        sock: socket.socket,
        board: Scoreboard,
        slot: Slot,
        *,
        master_pid: int | None = None,
        notify_fd: int | None = None,
    ) -> None:
        self._config = config
        self._factory = factory
        self._sock = sock
        self._board = board
        self._slot = slot
        self._master_pid = master_pid
        self._notify_fd = notify_fd
        self._requests: asyncio.Queue[Stop] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self.gate = RequestGate(board, slot, self._connections)

    def _connections(self) -> int:
        server = self._runner.server if self._runner is not None else None
        return server.open_connections if isinstance(server, WorkerServer) else 0

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        def ask(kind: Stop) -> Callable[[], None]:
            return lambda: self._requests.put_nowait(kind)

        loop.add_signal_handler(signal.SIGTERM, ask(Stop.DRAIN))
        loop.add_signal_handler(signal.SIGQUIT, ask(Stop.FAST))
        if self._master_pid is None:
            loop.add_signal_handler(signal.SIGINT, ask(Stop.INTERRUPT))
            for ignored in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
                loop.add_signal_handler(ignored, _ignore, ignored)
        else:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            loop.add_signal_handler(signal.SIGUSR2, ask(Stop.RETIRE))

    async def _beat(self) -> None:
        """Heartbeat for the master and fresh figures for /metrics and the balanced accept."""
        while True:
            self._slot.beat(self._connections())
            if self._master_pid is not None and os.getppid() != self._master_pid:
                log.warning("the master (pid %d) is gone; stopping", self._master_pid)
                self._requests.put_nowait(Stop.DRAIN)
                return
            await asyncio.sleep(BEAT_SECONDS)

    def _make_site(self, runner: web.AppRunner) -> web.BaseSite:
        return accept.site(
            runner,
            self._config,
            self._sock,
            self._board,
            self._slot,
            prefork=self._master_pid is not None,
        )

    async def _start_bootstrap(self) -> web.ServerRunner:
        runner = web.ServerRunner(bootstrap_server(self.gate), shutdown_timeout=1)
        await runner.setup()
        await web.SockSite(runner, self._sock.dup(), backlog=self._config.backlog).start()
        return runner

    async def _boot(self) -> web.AppRunner:
        """Builds the app and starts serving it; BootError if the app cannot start."""
        config = self._config
        app = await build_app(self._factory, config.app)
        runner = WorkerAppRunner(
            app,
            header_timeout=config.header_timeout,
            write_delay=config.write_delay,
            keepalive_timeout=config.keep_alive_timeout,
            handle_signals=False,
            access_log=logging.getLogger("aiohttp.access") if config.access_log else None,
            shutdown_timeout=config.shutdown_timeout,
        )
        try:
            await runner.setup()
        except Exception as exc:
            log.exception("the startup hooks of APP %r raised", config.app)
            raise BootError(f"the startup hooks of APP {config.app!r} raised {exc!r}") from exc
        assert isinstance(runner.server, WorkerServer)
        runner.server.request_handler = self.gate.wrap(runner.server.request_handler)
        # Every open and close reaches the scoreboard at once (connections.py says why).
        runner.server.on_count = self._slot.set_connections
        self._runner = runner
        self._site = self._make_site(runner)
        await self._site.start()
        return runner

    def _notify_master(self) -> None:
        if self._notify_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._notify_fd, b"r")

    async def run(self) -> ExitCode:
        """Serves until stopped; the exit code for the process."""
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        clienterrors.install()
        beat = loop.create_task(self._beat())
        try:
            return await self._serve()
        finally:
            beat.cancel()
            # The last figures, for the worker that takes this slot over.
            self._slot.publish()

    async def _serve(self) -> ExitCode:
        bootstrap = await self._start_bootstrap() if self._master_pid is None else None
        try:
            runner = await self._boot()
        except BootError as exc:
            log.error("%s", exc)
            return ExitCode.BOOT_FAILURE
        finally:
            if bootstrap is not None:
                await bootstrap.cleanup()
        release_free_memory()
        self.gate.ready = True
        self._slot.state = SlotState.READY
        self._notify_master()
        log.info("serving %s on %s", self._config.app, self._site.name)

        kind = await self._requests.get()
        if kind in (Stop.DRAIN, Stop.INTERRUPT):
            self._start_drain()
            kind = await self._drain_delay()
        elif kind is Stop.RETIRE:
            log.info("retiring: no new connections, finishing the current ones")
            self.gate.closing = True
            self._slot.state = SlotState.RETIRING
        if kind is Stop.FAST:
            return self._fast_exit()

        await self._site.stop()
        if kind is Stop.RETIRE:
            await self._let_connections_close()
        cleanup = asyncio.ensure_future(runner.cleanup())
        fast = asyncio.ensure_future(self._wait_for(Stop.FAST))
        await asyncio.wait({cleanup, fast}, return_when=asyncio.FIRST_COMPLETED)
        fast.cancel()
        if not cleanup.done():
            return self._fast_exit()
        if cleanup.exception() is not None:
            log.error("cleanup failed: %r", cleanup.exception())
        log.info("stopped")
        return ExitCode.OK

    def _start_drain(self) -> None:
        """`Connection: close` from now on; /readyz fails (prefork: once the whole pod drains).

        A prefork worker can get a SIGTERM of its own (a `kill` of its pid):
        the pod stays ready while it drains, and the master replaces it.
        """
        if self._master_pid is None:
            log.info("draining: /readyz fails, serving %.1fs more", self._config.drain_delay)
            self.gate.draining = True
        else:
            log.info("draining: serving %.1fs more", self._config.drain_delay)
        self.gate.closing = True
        self._slot.state = SlotState.DRAINING

    async def _drain_delay(self) -> Stop:
        """Serves for the drain delay; what ends it: the delay, a second SIGINT, or SIGQUIT.

        A repeated SIGTERM is the same stop reaching the process again (a
        SIGTERM to the process group also arrives through the prefork
        master; an init relays what the group already got): one drain per
        process, however many copies arrive.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.drain_delay
        while (left := deadline - loop.time()) > 0:
            try:
                kind = await asyncio.wait_for(self._requests.get(), left)
            except TimeoutError:
                break
            if kind is Stop.DRAIN:
                log.info("SIGTERM again: already draining")
                continue
            return kind
        return Stop.DRAIN

    async def _wait_for(self, wanted: Stop) -> None:
        while await self._requests.get() is not wanted:
            pass

    async def _let_connections_close(self) -> None:
        """Gives busy keep-alive connections a moment to end on `Connection: close`.

        A client under load sends its next request within milliseconds and
        gets the close with the answer, instead of racing a server-side close
        of an idle connection; the idle rest are closed by the cleanup.
        """
        step = 0.02
        for _ in range(int(min(RETIRE_GRACE_SECONDS, self._config.shutdown_timeout) / step)):
            if not self._connections():
                return
            await asyncio.sleep(step)

    def _fast_exit(self) -> ExitCode:
        log.info("fast stop: exiting now")
        return ExitCode.OK


def _ignore(signum: int) -> None:
    """Signals that mean something to a prefork master must not kill a single process."""
    log.info("%s ignored in single mode", signal.Signals(signum).name)
