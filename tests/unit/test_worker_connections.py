"""The aiohttp internals connections.py relies on, checked against the installed aiohttp.

aiohttp has no public way to ask whether a connection is waiting for a
request head, which arguments its server gives each connection handler, or
to choose the server an AppRunner makes; connections.py reads each in one
place. These tests fail, naming the part, when an aiohttp upgrade changes
one of them, instead of the header timeout or the connection count quietly
stopping to work.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from aiohttp import web

from corescale.worker import connections


async def _wait_for(condition: Callable[[], bool]) -> None:
    """Turns the loop until `condition()` holds (a few turns, on a real socket)."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 (aiohttp's state sets no event to wait on)
            await asyncio.sleep(0.005)


def test_waiting_for_head_follows_a_real_connection() -> None:
    """Waiting before the head, not while it is answered, waiting again after the answer."""

    async def check() -> None:
        release = asyncio.Event()

        async def hello(request: web.Request) -> web.Response:
            await release.wait()
            return web.Response(text="hello\n")

        app = web.Application()
        app.router.add_get("/", hello)
        runner = connections.WorkerAppRunner(
            app, header_timeout=60, keepalive_timeout=60, write_delay=0.001
        )
        await runner.setup()
        server = runner.server
        assert isinstance(server, connections.WorkerServer)
        ours, theirs = socket.socketpair()
        handlers: list[web.RequestHandler] = []

        def factory() -> web.RequestHandler:
            handlers.append(server())
            return handlers[-1]

        try:
            await asyncio.get_running_loop().connect_accepted_socket(factory, ours)
            (handler,) = handlers
            assert connections.waiting_for_head(handler)
            theirs.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # half a head
            await asyncio.sleep(0.05)
            assert connections.waiting_for_head(handler)
            theirs.sendall(b"\r\n")
            # The app holds the request until released: it is being answered.
            await _wait_for(lambda: not connections.waiting_for_head(handler))
            release.set()
            theirs.setblocking(False)
            answer = b""
            while b"hello\n" not in answer:
                await asyncio.sleep(0.005)
                with contextlib.suppress(BlockingIOError):
                    answer += theirs.recv(4096)
            await _wait_for(lambda: connections.waiting_for_head(handler))
        finally:
            theirs.close()
            await runner.cleanup()

    asyncio.run(check())


def test_the_worker_server_gets_the_handler_arguments_of_aiohttps_own() -> None:
    """The runner's settings and the app's own handler_args reach every connection handler."""

    async def check() -> None:
        app = web.Application(handler_args={"max_line_size": 1234})
        runner = connections.WorkerAppRunner(
            app, header_timeout=7, keepalive_timeout=42, write_delay=0.001
        )
        await runner.setup()
        try:
            server = runner.server
            assert isinstance(server, connections.WorkerServer), (
                "aiohttp no longer builds its server in AppRunner._make_server"
            )
            arguments = connections.handler_arguments(server)
            assert arguments["keepalive_timeout"] == 42
            assert arguments["max_line_size"] == 1234
            handler = server()
            assert isinstance(handler, connections.TimedRequestHandler)
            assert handler.max_line_size == 1234
        finally:
            await runner.cleanup()

    asyncio.run(check())


def test_a_read_waits_its_turn_only_behind_another_connections_request() -> None:
    """Parsed at once on an idle server; behind the loop's queue while another request is open."""

    async def check() -> None:
        release = asyncio.Event()

        async def hold(request: web.Request) -> web.Response:
            await release.wait()
            return web.Response(text="held\n")

        async def hello(request: web.Request) -> web.Response:
            return web.Response(text="hello\n")

        app = web.Application()
        app.router.add_get("/hold", hold)
        app.router.add_get("/", hello)
        runner = connections.WorkerAppRunner(
            app, header_timeout=60, keepalive_timeout=60, write_delay=0.001
        )
        await runner.setup()
        server = runner.server
        assert isinstance(server, connections.WorkerServer)
        pairs = [socket.socketpair() for _ in range(2)]
        handlers: list[connections.TimedRequestHandler] = []

        def factory() -> web.RequestHandler:
            handler = server()
            assert isinstance(handler, connections.TimedRequestHandler)
            handlers.append(handler)
            return handler

        loop = asyncio.get_running_loop()
        try:
            for ours, _ in pairs:
                await loop.connect_accepted_socket(factory, ours)
            first, second = handlers
            # Nobody else has a request open: the head is parsed in this very call.
            first.data_received(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
            assert not connections.waiting_for_head(first)
            await _wait_for(lambda: first._request_in_progress)
            # The first connection's request is open: the second one's read
            # waits for the callbacks already queued, then is parsed and
            # answered (below) while the first is still held.
            second.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert connections.waiting_for_head(second)
            for _, theirs in pairs:
                theirs.setblocking(False)
            answers = [b"", b""]
            while b"held\n" not in answers[0] or b"hello\n" not in answers[1]:
                await asyncio.sleep(0.005)
                for index, (_, theirs) in enumerate(pairs):
                    with contextlib.suppress(BlockingIOError):
                        answers[index] += theirs.recv(4096)
                if b"hello\n" in answers[1]:
                    release.set()
            # Both answered: the next read on either is parsed at once again.
            await _wait_for(lambda: connections.waiting_for_head(first))
            await _wait_for(lambda: connections.waiting_for_head(second))
            second.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert not connections.waiting_for_head(second)
        finally:
            for _, theirs in pairs:
                theirs.close()
            await runner.cleanup()

    asyncio.run(check())
