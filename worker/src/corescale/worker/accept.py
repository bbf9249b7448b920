"""How serving processes take connections: the accept strategy, decided here alone.

:func:`listener` is the socket cli.py binds before serving or forking, and
:func:`site` how each serving process accepts from it: in prefork mode what
``--accept`` says, and in single mode the balanced site too, which with no
sibling takes every queued connection (up to BURST) per wake-up.

Single mode does not use the event loop's own accept loop because uvloop's
(libuv 1.52) takes one connection per turn of the loop: with CPU-bound
requests a turn lasts tens of milliseconds, so a burst of 64 new connections
waited up to 64 turns, 1-2 s, in the kernel's accept queue, and their first
requests were the p99 (docs/worker.md, issue 15 point 7). asyncio's own loop
takes up to a backlog's worth per wake-up and never showed it.

The measurement in docs/worker.md chose `balanced`: every worker watches the
same inherited socket and, on each wake-up, takes the connections that bring
it up to its even share of all that are open and queued, counting only the
siblings whose event loop is turning (a fresh heartbeat): a stuck or stopped
worker is not waited for. The event loops' own accept loops take up to a
backlog's worth of connections per wake-up, so with a shared socket one
worker can end up with most of a burst of keep-alive connections;
SO_REUSEPORT spreads by a hash (uneven with a few dozen connections) and
loses the connections queued on a socket that closes, which a shared socket
never does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time

from aiohttp import web

from corescale.worker.config import Accept, Config
from corescale.worker.connections import WorkerServer
from corescale.worker.scoreboard import Scoreboard, Slot
from corescale.worker.sockets import bind_listener

log = logging.getLogger(__name__)

# A worker whose share of the connections is taken steps back this long, so
# that a sibling can take the next ones; after MAX_DECLINES of these it takes
# one anyway (the siblings may be busy with the CPU).
PAUSE_SECONDS = 0.003
MAX_DECLINES = 8
# A worker may go this many connections above its even share: with a few
# connections open (a new connection per request) an exact share would make
# workers step back over a difference of one.
SLACK = 1
# Connections taken in one wake-up when no sibling is there to share with.
BURST = 64
EMFILE_PAUSE_SECONDS = 0.1
# A worker whose heartbeat (written by its event loop every BEAT_SECONDS, see
# serving.py) is older than this is not turning its loop: stuck in a long
# CPU-bound request, stopped (SIGSTOP), or about to be killed. It cannot
# accept, so nobody steps back for it.
STALE_SECONDS = 1.0
# struct tcp_info: for a listening socket Linux reports the length of its
# accept queue in tcpi_unacked, the fifth 32-bit field after 8 bytes of flags.
_TCP_INFO_LENGTH = 32
_TCPI_UNACKED = struct.Struct("I")
_TCPI_UNACKED_OFFSET = 24


def queued_connections(sock: socket.socket) -> int:
    """Connections waiting in a listening socket's accept queue; 1 where Linux does not say."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LENGTH)
    except (OSError, AttributeError):
        return 1
    if len(info) < _TCP_INFO_LENGTH:
        return 1
    return int(_TCPI_UNACKED.unpack_from(info, _TCPI_UNACKED_OFFSET)[0])


class BalancedSite(web.BaseSite):
    """An aiohttp site on a shared listening socket that keeps connections even across workers.

    On each wake-up a worker takes, in one go, the connections that bring it
    up to its even share of everything open and queued (its own, its live
    siblings' and the kernel's accept queue); the rest stay queued for the
    siblings, woken by the same readiness. Taking them one per wake-up, or
    stepping back while a busy sibling did not come, left the last of a burst
    of connections waiting for many turns of busy event loops: that wait was
    the p99 of the old balanced accept (docs/worker.md).

    It does nothing on the event loop while no connection arrives: no timer,
    no polling. Its own count of open connections is written to its slot
    whenever it decides and accepts, and by the server whenever a connection
    opens or closes (connections.py), so the siblings read a current count.
    """

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
        self._connecting = 0
        host, port = sock.getsockname()[:2]
        self._name = f"http://{host}:{port}"

    @property
    def name(self) -> str:
        return self._name

    def _open_connections(self) -> int:
        server = self._runner.server
        if server is None:
            return self._connecting
        # The worker's own server counts closes at once; aiohttp's list lags.
        if isinstance(server, WorkerServer):
            return server.open_connections + self._connecting
        return len(server.connections) + self._connecting

    async def start(self) -> None:
        await super().start()
        self._sock.setblocking(False)
        self._resume()

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

    def _quota(self, mine: int) -> int:
        """How many connections to take now: up to an even share, over live ready siblings."""
        self._slot.set_connections(mine)
        siblings = list(
            self._board.ready_connections(
                exclude=self._slot.index, beating_since=time.monotonic() - STALE_SECONDS
            )
        )
        if not siblings:
            return BURST
        total = mine + int(sum(siblings)) + max(1, queued_connections(self._sock))
        share = -(-total // (len(siblings) + 1))
        return share + SLACK - mine

    def _on_readable(self) -> None:
        mine = self._open_connections()
        quota = self._quota(mine)
        if quota <= 0:
            if self._declines < MAX_DECLINES:
                self._declines += 1
                self._pause(PAUSE_SECONDS)
                return
            quota = 1
        self._declines = 0
        loop = asyncio.get_running_loop()
        for _ in range(quota):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("accept failed (%s); pausing accepts briefly", exc)
                self._pause(EMFILE_PAUSE_SECONDS)
                break
            mine += 1
            self._connecting += 1
            # At once, so that a sibling woken by the same readiness sees it.
            self._slot.set_connections(mine)
            task = loop.create_task(self._serve(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _serve(self, conn: socket.socket) -> None:
        """Hands an accepted socket to the aiohttp server; from then on it counts there."""
        server = self._runner.server
        try:
            if server is None:
                conn.close()
                return
            await asyncio.get_running_loop().connect_accepted_socket(server, conn)
        except OSError as exc:
            log.debug("connection lost while being set up: %s", exc)
            conn.close()
        finally:
            self._connecting -= 1

    async def stop(self) -> None:
        """Stops accepting; connections still queued stay in the socket for the other workers."""
        self._stopped = True
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
        # No siblings in the scoreboard: a whole burst per wake-up (module docstring).
        return BalancedSite(runner, sock, board, slot)
    if config.accept is Accept.REUSEPORT:
        own = bind_listener(config.host, config.port, config.backlog, reuse_port=True)
        return web.SockSite(runner, own, backlog=config.backlog)
    if config.accept is Accept.SHARED:
        return web.SockSite(runner, sock, backlog=config.backlog)
    return BalancedSite(runner, sock, board, slot)
