"""The built-in demo app: what runs when no APP is given, and what the benchmark serves.

Its handlers stand for the kinds of work a service does: answer at once
(`/`), hold the CPU (`/cpu`), wait on something else (`/io`), and tell which
process answered (`/pid`), which is how tests and benchmarks see the spread
of requests over workers. gunicorn serves the same factory in the benchmark.
"""

from __future__ import annotations

import asyncio
import os
import time

from aiohttp import web

MAX_MS = 60_000


def _milliseconds(request: web.Request) -> int:
    """The `ms` query parameter, bounded so that one request cannot hold a worker forever."""
    text = request.query.get("ms", "0")
    try:
        ms = int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"ms must be a whole number, not {text!r}\n") from None
    if not 0 <= ms <= MAX_MS:
        raise web.HTTPBadRequest(text=f"ms must be between 0 and {MAX_MS}\n")
    return ms


async def index(request: web.Request) -> web.Response:
    """A short text: the cost of the server itself."""
    return web.Response(text="Hello from corescale\n")


async def cpu(request: web.Request) -> web.Response:
    """Burns `ms` ms of this thread's CPU time, blocking the event loop as real work does."""
    ms = _milliseconds(request)
    deadline = time.thread_time() + ms / 1000
    rounds = 0
    while time.thread_time() < deadline:
        rounds += 1
    return web.Response(text=f"burned {ms} ms of CPU ({rounds} rounds)\n")


async def io(request: web.Request) -> web.Response:
    """Awaits `ms` milliseconds, like a call to a database or another service."""
    ms = _milliseconds(request)
    await asyncio.sleep(ms / 1000)
    return web.Response(text=f"waited {ms} ms\n")


async def pid(request: web.Request) -> web.Response:
    """Which process served the request."""
    return web.Response(text=f"{os.getpid()}\n")


def create_app() -> web.Application:
    """The demo application; also `gunicorn 'corescale.worker.app:create_app()'`."""
    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/cpu", cpu)
    app.router.add_get("/io", io)
    app.router.add_get("/pid", pid)
    return app
