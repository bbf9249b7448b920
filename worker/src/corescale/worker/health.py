"""The paths reserved in front of the user's app, and the per-request figures.

/healthz, /readyz and /metrics share the app's port (docs/contract.md), so a
pod has one port for traffic, probes and scraping. They are answered by a
wrapper around the aiohttp server's request handler, before the app's
routing and middlewares: an app with a catch-all route cannot shadow them,
and an app without middlewares keeps aiohttp's faster path without any.
The same wrapper times and counts every app request. Requests to the
reserved paths are not counted: a probe every few seconds is not load, and
the operator reads these figures to scale on load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from corescale.worker import exposition
from corescale.worker.scoreboard import Scoreboard, Slot

HEALTHZ, READYZ, METRICS = "/healthz", "/readyz", "/metrics"
RESERVED = frozenset({HEALTHZ, READYZ, METRICS})
READ_METHODS = frozenset({"GET", "HEAD"})
# nginx's code for a request whose client went away before the answer.
CLIENT_CLOSED = 499

RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class RequestGate:
    """What every request to one serving process passes through first.

    It answers the reserved paths itself, times and counts every other
    request on its way to the app, and marks answers `Connection: close`
    while the process winds down.

    `ready` is what /readyz reports; `closing` makes every response carry
    `Connection: close`, so that keep-alive clients move to another
    connection (another pod, or another worker) before this one stops.
    """

    def __init__(self, board: Scoreboard, slot: Slot, connections: Callable[[], int]) -> None:
        self._board = board
        self._slot = slot
        self._connections = connections
        self.ready = False
        self.draining = False
        self.closing = False

    def reserved(self, path: str, method: str) -> web.Response:
        """The answer for one of the reserved paths: probes and scrapes only read."""
        if method not in READ_METHODS:
            return web.Response(
                status=405, text="method not allowed\n", headers={"Allow": "GET, HEAD"}
            )
        if path == HEALTHZ:
            return web.Response(text="ok\n")
        if path == READYZ:
            draining = self.draining or self._board.draining
            if self.ready and not draining:
                return web.Response(text="ready\n")
            reason = "draining" if draining else "starting"
            return web.Response(status=503, text=f"{reason}\n")
        self._slot.beat(self._connections())
        return web.Response(
            body=exposition.render(self._board.figures()),
            headers={"Content-Type": exposition.CONTENT_TYPE},
        )

    def wrap(self, handler: RequestHandler) -> RequestHandler:
        """`handler` behind the reserved paths, the request figures and the closing flag.

        The figures go straight into the slot's lists (scoreboard.py says
        why); the clock and the lists are bound once, here, not looked up per
        request.
        """
        slot = self._slot
        entered, left, durations, statuses = slot.entered, slot.left, slot.durations, slot.statuses
        clock = time.perf_counter

        async def gated(request: web.BaseRequest) -> web.StreamResponse:
            # The form of the path that aiohttp's router matches on, computed
            # once and cached on the URL; `request.path` would decode it anew.
            path = request.rel_url.path_safe
            if path in RESERVED:
                response: web.StreamResponse = self.reserved(path, request.method)
            else:
                started = clock()
                entered.append(started)
                status = 500
                try:
                    response = await handler(request)
                    status = response.status
                except web.HTTPException as exc:
                    status = exc.status
                    if self.closing:
                        exc.force_close()
                    raise
                except asyncio.CancelledError:
                    status = CLIENT_CLOSED
                    raise
                finally:
                    left.append(started)
                    durations.append(clock() - started)
                    statuses.append(status)
            if self.closing:
                response.force_close()
            return response

        return gated


def bootstrap_server(gate: RequestGate) -> web.Server:
    """What a single-mode process serves while the real app is being built.

    The port is open from the start, so probes get an honest 503 "starting"
    rather than a refused connection, and the liveness probe passes while a
    slow async factory connects to its database.
    """

    async def starting(request: web.BaseRequest) -> web.Response:
        return web.Response(status=503, text="starting\n")

    return web.Server(gate.wrap(starting))
