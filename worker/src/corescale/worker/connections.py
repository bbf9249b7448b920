"""The worker's aiohttp server, per connection: time limits, and a live count of them.

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
nearly all of them, costs two attribute checks and no timer.

The order of arrivals: uvloop calls `data_received` while it polls, before
the callbacks already queued for this turn of the loop; asyncio's loop
queues the read behind them. Under uvloop a connection whose request came
in just after the poll (the last answer of a long turn of CPU-bound
requests) thus went to the back of the next turn, and stayed there: the
same connections waited a whole extra turn again and again, and the p99 of
`/cpu?ms=1` was 1.4 times gunicorn's asyncio worker's on a quiet machine
(issue 15, point 7; docs/worker.md). So each read is handed on with
`call_soon`, behind what is already queued, as asyncio does: every
connection then takes the same path, first come, first served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)


class TimedRequestHandler(RequestHandler):
    """aiohttp's connection handler, closing connections whose request head is too slow."""

    __slots__ = ("_header_handle", "_header_timeout")

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_handle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_header_clock()

    def data_received(self, data: bytes) -> None:
        if data:
            # Behind the callbacks already queued (module docstring); the
            # loop runs connection_lost through call_soon too, so it still
            # comes after the last data.
            self._loop.call_soon(self._take, data)
        else:
            # aiohttp itself calls data_received(b"") to parse what it has
            # buffered before it decides whether to resume reading.
            self._take(data)

    def _take(self, data: bytes) -> None:
        _parse(self, data)
        if self._messages or self._request_in_progress:
            if self._header_handle is not None:
                self._header_handle.cancel()
                self._header_handle = None
        elif self._header_handle is None:
            self._start_header_clock()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_handle is not None:
            self._header_handle.cancel()
            self._header_handle = None
        super().connection_lost(exc)

    def _start_header_clock(self) -> None:
        self._header_handle = self._loop.call_later(self._header_timeout, self._header_too_slow)

    def _header_too_slow(self) -> None:
        self._header_handle = None
        if not self._messages and not self._request_in_progress:
            log.debug(
                "closing a connection that sent no whole request head in %ss", self._header_timeout
            )
            self.force_close()


_parse = RequestHandler.data_received
"""aiohttp's own data_received, called directly: the cheapest call per read."""


class WorkerServer(web.Server):
    """aiohttp's server (the protocol factory): TimedRequestHandlers, counted as they come, go."""

    def __init__(self, plain: web.Server, header_timeout: float) -> None:
        super().__init__(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
        self._header_timeout = header_timeout
        self.open_connections = 0
        self.on_count: Callable[[int], None] | None = None
        """Called with the new count whenever a connection opens or closes."""

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.open_connections += 1
        if self.on_count is not None:
            self.on_count(self.open_connections)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.open_connections -= 1
        if self.on_count is not None:
            self.on_count(self.open_connections)

    def __call__(self) -> RequestHandler:
        return TimedRequestHandler(
            self, loop=self._loop, header_timeout=self._header_timeout, **self._kwargs
        )


class WorkerAppRunner(web.AppRunner):
    """An AppRunner whose server applies the header timeout (keep-alive is aiohttp's own)."""

    __slots__ = ("_header_timeout",)

    def __init__(
        self,
        app: web.Application,
        *,
        header_timeout: float,
        keepalive_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, keepalive_timeout=keepalive_timeout, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        return WorkerServer(await super()._make_server(), self._header_timeout)
