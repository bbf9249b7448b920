"""Batched writes (writes.py) on real sockets, under both event loops the worker can run.

Each test writes through a BatchedTransport wrapped around a real socket's
transport and reads what the peer socket actually got, before and after the
loop turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop
from aiohttp import web

from corescale.worker import connections
from corescale.worker.writes import MAX_PENDING, BatchedTransport, WriteBatch

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


class Company:
    """How many connections have a request open (connections.ReadQueue keeps the real count)."""

    def __init__(self, busy: int) -> None:
        self.busy = busy


BUSY = Company(busy=2)
"""The writing connection and one other: answers wait for the batch."""


OPENED: list[tuple[BatchedTransport, socket.socket]] = []
"""The connections `pairs` made in the running test; `run` closes them."""


def run(loop_name: str, check: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        try:
            runner.run(check())
        finally:
            for transport, peer in OPENED:
                transport.abort()
                peer.close()
            OPENED.clear()


def on_both_loops(body: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[str], None]:
    """The async test `body` as a test run once under each event loop of LOOPS."""

    @pytest.mark.parametrize("loop_name", LOOPS)
    def test(loop_name: str) -> None:
        run(loop_name, body)

    test.__name__ = test.__qualname__ = body.__name__
    test.__doc__ = body.__doc__
    return test


def received(peer: socket.socket) -> bytes:
    """What the peer can read right now, without waiting."""
    got = b""
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return got
        if not chunk:
            return got + b"<EOF>"
        got += chunk


async def connection(batch: WriteBatch) -> tuple[BatchedTransport, socket.socket]:
    """A batched transport over one end of a socket pair, and the other end."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
    return BatchedTransport(transport, batch), theirs


async def pairs(
    n: int, *, max_delay: float = 60, company: Company = BUSY
) -> list[tuple[BatchedTransport, socket.socket]]:
    """`n` connections writing to one batch, each with its peer socket."""
    batch = WriteBatch(asyncio.get_running_loop(), max_delay=max_delay, company=company)
    made = [await connection(batch) for _ in range(n)]
    OPENED.extend(made)
    return made


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    """`app` behind the worker's runner (1 ms write delay) on a free port of 127.0.0.1."""
    runner = connections.WorkerAppRunner(
        app, header_timeout=60, keepalive_timeout=60, write_delay=0.001
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


@on_both_loops
async def test_writes_wait_for_the_end_of_the_turn_and_keep_each_connections_order() -> None:
    (one, one_peer), (two, two_peer) = await pairs(2)
    one.write(b"a1 ")
    two.write(b"b1 ")
    one.writelines([b"a2 ", memoryview(b"a3")])
    assert received(one_peer) == b"" and received(two_peer) == b""
    assert one.get_write_buffer_size() == len(b"a1 a2 a3")
    await turns()
    assert received(one_peer) == b"a1 a2 a3"
    assert received(two_peer) == b"b1 "
    assert one.get_write_buffer_size() == 0


@on_both_loops
async def test_a_lone_answer_leaves_at_once_and_one_among_held_ones_joins_them() -> None:
    alone = Company(busy=1)
    (one, one_peer), (two, two_peer) = await pairs(2, company=alone)
    one.write(b"nobody else")
    assert received(one_peer) == b"nobody else"
    alone.busy = 2
    one.write(b"held")
    alone.busy = 1
    two.write(b"joins")
    assert received(one_peer) == b"" and received(two_peer) == b""
    await turns()
    assert received(one_peer) == b"held" and received(two_peer) == b"joins"


@on_both_loops
async def test_a_batch_older_than_the_delay_leaves_at_the_next_write() -> None:
    (one, one_peer), (two, two_peer) = await pairs(2, max_delay=0.01)
    one.write(b"first")
    time.sleep(0.02)  # noqa: ASYNC251 (a slow handler, in the same turn)
    assert received(one_peer) == b""
    two.write(b"second")
    # Both left in that write, without the loop turning.
    assert received(one_peer) == b"first"
    assert received(two_peer) == b"second"


@on_both_loops
async def test_close_sends_what_waits_first_and_abort_drops_it() -> None:
    (closed, closed_peer), (aborted, aborted_peer) = await pairs(2)
    closed.write(b"last words")
    aborted.write(b"never sent")
    closed.close()
    aborted.abort()
    assert closed.is_closing() and aborted.is_closing()
    await turns()
    assert received(closed_peer) == b"last words<EOF>"
    assert received(aborted_peer) in (b"<EOF>", b"")
    # A write after close is the socket transport's to refuse (uvloop raises,
    # asyncio's drops it): nothing is held for it.
    with contextlib.suppress(RuntimeError):
        closed.write(b"late")
    assert closed.get_write_buffer_size() == 0


@on_both_loops
async def test_a_large_write_leaves_at_once_after_what_waits() -> None:
    ((transport, peer),) = await pairs(1)
    transport.write(b"head|")
    body = bytes(range(256)) * (MAX_PENDING // 256 + 1)
    transport.write(body)
    got = received(peer)  # no turn of the loop: sent in the write itself
    assert got.startswith(b"head|" + body[:1000])
    assert transport.get_write_buffer_size() == len(b"head|") + len(body) - len(got)


@on_both_loops
async def test_a_reused_buffer_is_sent_as_it_was_when_written() -> None:
    ((transport, peer),) = await pairs(1)
    buffer = bytearray(b"original")
    transport.write(buffer)
    buffer[:] = b"REUSED!!"
    await turns()
    assert received(peer) == b"original"


@pytest.mark.parametrize("loop_name", LOOPS)
def test_the_server_batches_answers_and_keeps_files_and_streams_whole(
    loop_name: str, tmp_path: Path
) -> None:
    """Keep-alive answers, a file and a large body written without yielding, byte for byte.

    Under uvloop the answers are batched; under asyncio's loop, which sends
    files around the transport, they are not (writes.can_batch).
    """
    data = bytes(range(256)) * 1200  # 300 KiB
    (tmp_path / "file.bin").write_bytes(data)

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for start in range(0, len(data), 4096):
            await response.write(data[start : start + 4096])
        await response.write_eof()
        return response

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello\n")

    async def file(request: web.Request) -> web.FileResponse:
        return web.FileResponse(tmp_path / "file.bin")

    async def check() -> None:
        app = web.Application()
        app.router.add_get("/", hello)
        app.router.add_get("/stream", stream)
        app.router.add_get("/file", file)
        runner, port = await serve(app)
        server = runner.server
        assert isinstance(server, connections.WorkerServer)
        batched: list[bool] = []
        made = server.connection_made

        def note(handler: web.RequestHandler, transport: asyncio.Transport) -> None:
            batched.append(isinstance(handler.transport, BatchedTransport))
            made(handler, transport)

        server.connection_made = note  # type: ignore[method-assign]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # Pipelined: three answers in one turn, in order.
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 3)
            for _ in range(3):
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
                assert await reader.readexactly(len(b"hello\n")) == b"hello\n"
            for path in ("/file", "/stream"):
                writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head
                if b"chunked" in head.lower():
                    body = b""
                    while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
                        body += await reader.readexactly(size)
                        assert await reader.readexactly(2) == b"\r\n"
                    assert await reader.readexactly(2) == b"\r\n"
                else:
                    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    body = await reader.readexactly(length)
                assert body == data, path
            writer.close()
            assert batched == [loop_name == "uvloop"]
        finally:
            await runner.cleanup()

    run(loop_name, check)


def test_websockets_echo_and_close_through_batched_writes() -> None:
    """WebSocket frames leave with the batch, in order, and so does the close.

    Two WebSockets are open at once, so each handler has another request
    open beside its own and its frames wait for the batch (not sent alone).
    """

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(message.data.upper())
            await ws.send_str(message.data)
        return ws

    async def check() -> None:
        app = web.Application()
        app.router.add_get("/ws", echo)
        runner, port = await serve(app)
        try:
            url = f"http://127.0.0.1:{port}/ws"
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(url) as first,
                session.ws_connect(url) as second,
            ):
                for word in ("one", "two"):
                    for ws in (first, second):
                        await ws.send_str(word)
                    for ws in (first, second):
                        assert await ws.receive_str(timeout=5) == word.upper()
                        assert await ws.receive_str(timeout=5) == word
                for ws in (first, second):
                    await ws.close()
                    assert ws.close_code == 1000
        finally:
            await runner.cleanup()

    run("uvloop", check)
