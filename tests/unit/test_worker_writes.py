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


def run(loop_name: str, check: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        runner.run(check())


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


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_writes_wait_for_the_end_of_the_turn_and_keep_each_connections_order(
    loop_name: str,
) -> None:
    async def check() -> None:
        batch = WriteBatch(asyncio.get_running_loop(), max_delay=60, company=BUSY)
        (one, one_peer), (two, two_peer) = await connection(batch), await connection(batch)
        one.write(b"a1 ")
        two.write(b"b1 ")
        one.writelines([b"a2 ", memoryview(b"a3")])
        assert received(one_peer) == b"" and received(two_peer) == b""
        assert one.get_write_buffer_size() == len(b"a1 a2 a3")
        await turns()
        assert received(one_peer) == b"a1 a2 a3"
        assert received(two_peer) == b"b1 "
        assert one.get_write_buffer_size() == 0
        one.close()
        two.close()

    run(loop_name, check)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_lone_answer_leaves_at_once_and_one_among_held_ones_joins_them(loop_name: str) -> None:
    async def check() -> None:
        alone = Company(busy=1)
        batch = WriteBatch(asyncio.get_running_loop(), max_delay=60, company=alone)
        (one, one_peer), (two, two_peer) = await connection(batch), await connection(batch)
        one.write(b"nobody else")
        assert received(one_peer) == b"nobody else"
        alone.busy = 2
        one.write(b"held")
        alone.busy = 1
        two.write(b"joins")
        assert received(one_peer) == b"" and received(two_peer) == b""
        await turns()
        assert received(one_peer) == b"held" and received(two_peer) == b"joins"
        one.close()
        two.close()

    run(loop_name, check)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_batch_older_than_the_delay_leaves_at_the_next_write(loop_name: str) -> None:
    async def check() -> None:
        batch = WriteBatch(asyncio.get_running_loop(), max_delay=0.01, company=BUSY)
        (one, one_peer), (two, two_peer) = await connection(batch), await connection(batch)
        one.write(b"first")
        time.sleep(0.02)  # noqa: ASYNC251 (a slow handler, in the same turn)
        assert received(one_peer) == b""
        two.write(b"second")
        # Both left in that write, without the loop turning.
        assert received(one_peer) == b"first"
        assert received(two_peer) == b"second"
        one.close()
        two.close()

    run(loop_name, check)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_close_sends_what_waits_first_and_abort_drops_it(loop_name: str) -> None:
    async def check() -> None:
        batch = WriteBatch(asyncio.get_running_loop(), max_delay=60, company=BUSY)
        (closed, closed_peer), (aborted, aborted_peer) = (
            await connection(batch),
            await connection(batch),
        )
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

    run(loop_name, check)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_large_write_leaves_at_once_after_what_waits(loop_name: str) -> None:
    async def check() -> None:
        batch = WriteBatch(asyncio.get_running_loop(), max_delay=60, company=BUSY)
        transport, peer = await connection(batch)
        transport.write(b"head|")
        body = bytes(range(256)) * (MAX_PENDING // 256 + 1)
        transport.write(body)
        got = received(peer)  # no turn of the loop: sent in the write itself
        assert got.startswith(b"head|" + body[:1000])
        assert transport.get_write_buffer_size() == len(b"head|") + len(body) - len(got)
        transport.close()

    run(loop_name, check)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_reused_buffer_is_sent_as_it_was_when_written(loop_name: str) -> None:
    async def check() -> None:
        batch = WriteBatch(asyncio.get_running_loop(), max_delay=60, company=BUSY)
        transport, peer = await connection(batch)
        buffer = bytearray(b"original")
        transport.write(buffer)
        buffer[:] = b"REUSED!!"
        await turns()
        assert received(peer) == b"original"
        transport.close()

    run(loop_name, check)


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
        runner = connections.WorkerAppRunner(
            app, header_timeout=60, keepalive_timeout=60, write_delay=0.001
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
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


def test_a_websocket_echoes_and_closes_through_batched_writes() -> None:
    """WebSocket frames leave with the batch, in order, and so does the close."""

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
        runner = connections.WorkerAppRunner(
            app, header_timeout=60, keepalive_timeout=60, write_delay=0.001
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws,
            ):
                for word in ("one", "two"):
                    await ws.send_str(word)
                    assert await ws.receive_str(timeout=5) == word.upper()
                    assert await ws.receive_str(timeout=5) == word
                await ws.close()
                assert ws.close_code == 1000
        finally:
            await runner.cleanup()

    run("uvloop", check)
