"""How serving processes take connections: the accept strategy, decided here alone.

:func:`listener` is the socket cli.py binds before serving or forking, and
:func:`site` how each serving process accepts from it: the plain aiohttp
site in single mode, and in prefork mode what ``--accept`` says.

The measurement in docs/worker.md chose `balanced`: every worker watches the
same inherited socket, but accepts one connection at a time and only while it
has no more open connections than the least loaded ready worker. The event
loops' own accept loops take up to a backlog's worth of connections per
wake-up, so with a shared socket one worker can end up with most of a burst
of keep-alive connections; SO_REUSEPORT spreads by a hash (uneven with a few
dozen connections) and loses the connections queued on a socket that closes,
which a shared socket never does.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from aiohttp import web

from corescale.worker.config import Accept, Config
from corescale.worker.scoreboard import Scoreboard, Slot
from corescale.worker.sockets import bind_listener

log = logging.getLogger(__name__)

# A worker that is not the least loaded steps back this long, so that a less
# loaded one can take the connection; after MAX_DECLINES of these it takes the
# connection anyway (the others may be busy with the CPU, or stuck).
PAUSE_SECONDS = 0.003
MAX_DECLINES = 8
BURST = 16
EMFILE_PAUSE_SECONDS = 0.1
# How often a worker publishes its open connections between accepts, so that
# the others see closed connections soon (a new burst often follows a closed one).
PUBLISH_SECONDS = 0.05


class BalancedSite(web.BaseSite):
    """An aiohttp site on a shared listening socket that keeps connections even across workers."""

    def __init__(
        self, runner: web.BaseRunner, sock: socket.socket, board: Scoreboard, slot: Slot
    ) -> None:
        super().__init__(runner)
        self._sock = sock
        self._board = board
        self._slot = slot
        self._declines = 0
        self._reading = False
        self._stopped = False
        self._pending: set[asyncio.Task[None]] = set()
        self._publisher: asyncio.TimerHandle | None = None
        host, port = sock.getsockname()[:2]
        self._name = f"http://{host}:{port}"

    @property
    def name(self) -> str:
        return self._name

    def _open_connections(self) -> int:
        server = self._runner.server
        return (len(server.connections) if server is not None else 0) + len(self._pending)

    async def start(self) -> None:
        await super().start()
        self._sock.setblocking(False)
        self._resume()
        self._publish()

    def _publish(self) -> None:
        self._slot.set_connections(self._open_connections())
        self._publisher = asyncio.get_running_loop().call_later(PUBLISH_SECONDS, self._publish)

    def _resume(self) -> None:
        if self._stopped or self._reading:
            return
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._on_readable)
        self._reading = True

    def _pause(self, seconds: float) -> None:
        if self._reading:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._reading = False
        asyncio.get_running_loop().call_later(seconds, self._resume)

    def _may_accept(self, mine: int) -> bool:
        fewest = min(self._board.ready_connections(exclude=self._slot.index), default=None)
        if fewest is None or mine <= fewest or self._declines >= MAX_DECLINES:
            self._declines = 0
            return True
        self._declines += 1
        return False

    def _on_readable(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(BURST):
            mine = self._open_connections()
            if not self._may_accept(mine):
                self._pause(PAUSE_SECONDS)
                return
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept failed (%s); pausing accepts briefly", exc)
                self._pause(EMFILE_PAUSE_SECONDS)
                return
            self._slot.set_connections(mine + 1)
            task = loop.create_task(self._serve(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _serve(self, conn: socket.socket) -> None:
        server = self._runner.server
        if server is None:
            conn.close()
            return
        try:
            await asyncio.get_running_loop().connect_accepted_socket(server, conn)
        except OSError as exc:
            log.debug("connection lost while being set up: %s", exc)
            conn.close()

    async def stop(self) -> None:
        """Stops accepting; connections still queued stay in the socket for the other workers."""
        self._stopped = True
        if self._publisher is not None:
            self._publisher.cancel()
        if self._reading:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._reading = False
        self._sock.close()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await super().stop()


def listener(config: Config, *, prefork: bool) -> socket.socket:
    """The socket bound before serving (single) or forking (prefork).

    With ``reuseport`` every worker binds a socket of its own (:func:`site`),
    so this one only reserves the port: listening, it would take its share
    of connections and never accept them.
    """
    reuse_port = prefork and config.accept is Accept.REUSEPORT
    return bind_listener(
        config.host, config.port, config.backlog, reuse_port=reuse_port, listen=not reuse_port
    )


def site(
    runner: web.BaseRunner,
    config: Config,
    sock: socket.socket,
    board: Scoreboard,
    slot: Slot,
    *,
    prefork: bool,
) -> web.BaseSite:
    """How one serving process accepts connections, on ``sock`` from :func:`listener`."""
    if not prefork:
        return web.SockSite(runner, sock, backlog=config.backlog)
    if config.accept is Accept.REUSEPORT:
        own = bind_listener(config.host, config.port, config.backlog, reuse_port=True)
        return web.SockSite(runner, own, backlog=config.backlog)
    if config.accept is Accept.SHARED:
        return web.SockSite(runner, sock, backlog=config.backlog)
    return BalancedSite(runner, sock, board, slot)
