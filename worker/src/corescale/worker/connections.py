"""The worker's aiohttp server, per connection: time limits, read order, batched writes, a count.

The count: aiohttp drops a closed connection from `Server.connections` only
once its handler task has finished, and tells nobody. The balanced accept
(accept.py) compares the open connections that the workers publish in the
scoreboard; a count published only when a worker accepts or beats goes
stale-high as connections close, and then the siblings keep taking more
than their share (with a new connection per request, the worker that
accepts most also publishes most often, and the spread runs away). So the
server counts connections itself as they open and close, and reports each
change at once (one write to shared memory per connection, not per request).

The time limits: how long a client may hold a connection without giving the
server a request.

aiohttp closes a connection idle between requests after its keep-alive
timeout (an hour by default), and has no limit at all on how long a request
head may take to arrive: a client that connects and says nothing, or sends
half a header and stops (slowloris), holds a file descriptor for that hour.
A few thousand of them fill a process's descriptors, and then the liveness
probe is refused too.

So every serving process runs its app with two limits, both settings
(config.py): the keep-alive timeout (aiohttp's own, for idle connections
between requests) and a header timeout, kept here: a new connection must
deliver a whole request head within it, and so must every later request
from its first byte on. A request whose head arrives in one piece, which is
nearly all of them, costs one check and no timer.

The order of arrivals: uvloop calls `data_received` while it polls, before
the callbacks already queued for this turn of the loop; asyncio's loop
queues the read behind them. Under uvloop a connection whose request came
in just after the poll (the last answer of a long turn of CPU-bound
requests) thus went to the back of the next turn, and stayed there: the
same connections waited a whole extra turn again and again, and the p99 of
`/cpu?ms=1` was 1.4 times gunicorn's asyncio worker's on a quiet machine
(issue 15, point 7; docs/worker.md). So a read is handed on with
`call_soon`, behind what is already queued, as asyncio does: every
connection then takes the same path, first come, first served. The reads
that arrive in one poll wait together, in one callback (ReadQueue), not one
each. And a read is parsed at once when nothing can be queued ahead of it
that it would overtake: no other connection of this process has a request
head parsed and not yet answered, and no earlier read waits. There the
deferral changed no order and cost a callback and a turn of the loop, about
4 % of a `/` request's instructions (docs/worker.md).

The writes: a handler hands aiohttp a BatchedTransport around the socket's
own, so that answers leave together at the end of the loop's turn
(writes.py says why, and what bounds the wait).

aiohttp's public API does not reach all of this. Each private part it needs
is read in one place: `waiting_for_head` (and, inline because it runs on
every read, `TimedRequestHandler.data_received`), `handler_arguments` below,
and `WorkerAppRunner._make_server`; tests/unit/test_worker_connections.py
checks each against the installed aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from corescale.worker.writes import BatchedTransport, WriteBatch, can_batch

log = logging.getLogger(__name__)


def waiting_for_head(handler: web.RequestHandler) -> bool:
    """Whether a connection has no whole request head parsed and no request being answered.

    aiohttp has no public way to ask. Its handler keeps the parsed requests
    not yet answered in `_messages` and marks the one being answered with
    `_request_in_progress`; this and TimedRequestHandler.data_received are
    the places that read them, and tests/unit/test_worker_connections.py
    checks both on the installed aiohttp with a real connection.
    """
    return not handler._messages and not handler._request_in_progress


def handler_arguments(server: web.Server) -> dict[str, Any]:
    """The keyword arguments aiohttp's server gives each connection handler it makes.

    They are the runner's settings merged with the app's own `handler_args`
    (by `Application._make_handler`), and `web.Server` keeps them only in
    its private `_kwargs`; the WorkerServer that replaces it must pass the
    same ones on (tested in tests/unit/test_worker_connections.py).
    """
    return dict(server._kwargs)


_parse = web.RequestHandler.data_received
"""aiohttp's own data_received, called directly: the cheapest call per read."""
_log_access = web.RequestHandler.log_access


class ReadQueue:
    """The reads of one server's connections that wait for their turn (module docstring).

    `busy` counts the connections with a request head parsed and not yet
    answered: while there are any, or reads already wait, a new read joins
    the queue, and one callback parses the whole queue behind what was
    already scheduled. A connection counts as busy from the read that
    completes its head until aiohttp logs the answer (or the connection is
    lost), so one waiting on a slow backend or holding a WebSocket keeps
    every read deferred: the order then stays as fair as before, at the
    deferral's cost.
    """

    __slots__ = ("_loop", "busy", "flushing", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.pending: list[tuple[TimedRequestHandler, bytes]] = []
        self.busy = 0
        self.flushing = False
        """True while the queue is being parsed: those reads are not deferred again."""

    def defer(self, handler: TimedRequestHandler, data: bytes) -> None:
        if not self.pending:
            self._loop.call_soon(self._flush)
        self.pending.append((handler, data))

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        self.flushing = True
        try:
            for handler, data in batch:
                try:
                    handler.data_received(data)
                except Exception as exc:
                    # What the loop does with a failing callback: one bad
                    # connection must not lose the reads of the others.
                    self._loop.call_exception_handler(
                        {"message": "deferred read failed", "exception": exc, "protocol": handler}
                    )
        finally:
            self.flushing = False


class TimedRequestHandler(web.RequestHandler):
    """aiohttp's connection handler: slow request heads closed, reads in order, writes batched."""

    __slots__ = ("_busy", "_event_loop", "_header_handle", "_header_timeout", "_reads", "_writes")

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        header_timeout: float,
        reads: ReadQueue,
        writes: WriteBatch | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._event_loop = loop
        self._header_timeout = header_timeout
        self._header_handle: asyncio.TimerHandle | None = None
        self._reads = reads
        self._writes = writes
        self._busy = False
        """Whether this connection counts in `reads.busy`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._writes is not None:
            # aiohttp writes answers to whatever transport it is given (writes.py).
            transport = BatchedTransport(cast(asyncio.Transport, transport), self._writes)
        super().connection_made(transport)
        self._start_header_clock()

    def data_received(self, data: bytes) -> None:
        reads = self._reads
        # aiohttp itself calls data_received(b"") to parse what it has
        # buffered before it decides whether to resume reading: at once.
        if data and not reads.flushing and (reads.pending or reads.busy > self._busy):
            # Behind the callbacks already queued (module docstring); the
            # loop runs connection_lost through call_soon too, so it still
            # comes after the last data.
            reads.defer(self, data)
            return
        _parse(self, data)
        # waiting_for_head, inline (it runs on every read).
        if self._messages:
            if self._header_handle is not None:
                self._header_handle.cancel()
                self._header_handle = None
            if not self._busy:
                self._busy = True
                reads.busy += 1
        elif self._request_in_progress:
            if self._header_handle is not None:
                self._header_handle.cancel()
                self._header_handle = None
        elif self._header_handle is None and self.transport is not None:
            self._start_header_clock()

    def log_access(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float | None
    ) -> None:
        """aiohttp's call after every answer: with no request left, the connection is idle."""
        if self._busy and not self._messages:
            self._busy = False
            self._reads.busy -= 1
        if self.access_logger is not None:
            _log_access(self, request, response, time)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_handle is not None:
            self._header_handle.cancel()
            self._header_handle = None
        if self._busy:
            self._busy = False
            self._reads.busy -= 1
        super().connection_lost(exc)

    def _start_header_clock(self) -> None:
        self._header_handle = self._event_loop.call_later(
            self._header_timeout, self._header_too_slow
        )

    def _header_too_slow(self) -> None:
        self._header_handle = None
        if waiting_for_head(self):
            log.debug(
                "closing a connection that sent no whole request head in %ss", self._header_timeout
            )
            self.force_close()


class WorkerServer(web.Server):
    """aiohttp's server (the protocol factory): TimedRequestHandlers, counted as they come, go.

    It is made inside the running event loop (WorkerAppRunner), from the
    server aiohttp built for the app, with that server's public handler and
    request factory and the same handler arguments.
    """

    def __init__(self, plain: web.Server, header_timeout: float, write_delay: float) -> None:
        self._handler_loop = asyncio.get_running_loop()
        self._handler_kwargs = handler_arguments(plain)
        super().__init__(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=self._handler_loop,
            **self._handler_kwargs,
        )
        self._header_timeout = header_timeout
        self._reads = ReadQueue(self._handler_loop)
        self._writes: WriteBatch | None = None
        if write_delay > 0 and can_batch(self._handler_loop):
            self._writes = WriteBatch(self._handler_loop, write_delay, self._reads)
        self.open_connections = 0
        self.on_count: Callable[[int], None] | None = None
        """Called with the new count whenever a connection opens or closes."""

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.open_connections += 1
        if self.on_count is not None:
            self.on_count(self.open_connections)

    def connection_lost(
        self, handler: web.RequestHandler, exc: BaseException | None = None
    ) -> None:
        super().connection_lost(handler, exc)
        self.open_connections -= 1
        if self.on_count is not None:
            self.on_count(self.open_connections)

    def __call__(self) -> web.RequestHandler:
        return TimedRequestHandler(
            self,
            loop=self._handler_loop,
            header_timeout=self._header_timeout,
            reads=self._reads,
            writes=self._writes,
            **self._handler_kwargs,
        )


class WorkerAppRunner(web.AppRunner):
    """An AppRunner whose server applies the header timeout and the write delay (writes.py).

    aiohttp offers no public way to choose the server (the protocol factory)
    an AppRunner makes for its app; `_make_server` is the one method that
    makes it, so this class overrides it, and only it. If aiohttp renames
    or stops calling it, `runner.server` is no WorkerServer:
    tests/unit/test_worker_connections.py fails, and serving.py asserts it
    at start.
    """

    __slots__ = ("_header_timeout", "_write_delay")

    def __init__(
        self,
        app: web.Application,
        *,
        header_timeout: float,
        keepalive_timeout: float,
        write_delay: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, keepalive_timeout=keepalive_timeout, **kwargs)
        self._header_timeout = header_timeout
        self._write_delay = write_delay

    async def _make_server(self) -> web.Server:
        return WorkerServer(await super()._make_server(), self._header_timeout, self._write_delay)
