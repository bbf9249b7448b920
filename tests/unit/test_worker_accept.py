"""The accept strategy, decided in accept.py: which socket is bound and which site serves."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from aiohttp import web

from corescale.worker import accept, scoreboard
from corescale.worker.config import Accept, load_config
from corescale.worker.scoreboard import Scoreboard, SlotState


async def _answer(request: web.BaseRequest) -> web.StreamResponse:
    return web.Response()


def _listening(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


@pytest.mark.parametrize(
    ("strategy", "prefork", "listens"),
    [
        ("balanced", True, True),
        ("shared", True, True),
        ("reuseport", True, False),
        ("reuseport", False, True),
    ],
)
def test_the_listener_only_reserves_the_port_for_reuseport_workers(
    strategy: str, prefork: bool, listens: bool
) -> None:
    config = load_config(["--bind", "127.0.0.1:0", "--accept", strategy], env={})
    sock = accept.listener(config, prefork=prefork)
    try:
        assert _listening(sock) is listens
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("strategy", "prefork", "site", "own_socket"),
    [
        ("balanced", False, accept.BalancedSite, False),
        ("balanced", True, accept.BalancedSite, False),
        ("shared", True, web.SockSite, False),
        ("reuseport", True, web.SockSite, True),
    ],
)
def test_each_serving_process_accepts_as_the_strategy_says(
    strategy: str, prefork: bool, site: type, own_socket: bool
) -> None:
    async def check() -> None:
        # Port 0 would give the worker's own reuseport socket another port;
        # take a free one and bind both to it, as master and worker do.
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        config = load_config(["--bind", f"127.0.0.1:{port}", "--accept", strategy], env={})
        sock = accept.listener(config, prefork=prefork)
        board = Scoreboard(None)
        runner = web.ServerRunner(web.Server(_answer))
        await runner.setup()
        try:
            made = accept.site(runner, config, sock, board, board.slot(0), prefork=prefork)
            assert type(made) is site
            if isinstance(made, web.SockSite):
                assert (made._sock is not sock) is own_socket
                if own_socket:
                    made._sock.close()
        finally:
            await runner.cleanup()
            board.close()
            sock.close()

    asyncio.run(check())


def test_balanced_is_the_default() -> None:
    assert load_config([], env={}).accept is Accept.BALANCED


def _queue(sock: socket.socket, count: int) -> list[socket.socket]:
    clients = [socket.create_connection(sock.getsockname()) for _ in range(count)]
    deadline = time.monotonic() + 5
    while accept.queued_connections(sock) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return clients


def test_the_accept_queue_length_is_read_from_the_kernel() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        assert accept.queued_connections(sock) == 0
        clients = _queue(sock, 5)
        assert accept.queued_connections(sock) == 5
        for client in clients:
            client.close()


@pytest.mark.parametrize(("sibling_beats", "taken"), [(True, 6), (False, 10)])
def test_a_balanced_worker_takes_its_share_and_waits_for_no_stuck_sibling(
    sibling_beats: bool, taken: int
) -> None:
    """10 queued, a ready sibling with none open: take half (+1 slack), or all if it is stuck."""

    async def check() -> None:
        config = load_config(["--bind", "127.0.0.1:0"], env={})
        sock = accept.listener(config, prefork=True)
        board = Scoreboard(None)
        board.claim(1, 4242)
        sibling = board.slot(1)
        sibling.state = SlotState.READY
        if sibling_beats:
            sibling.beat(0)
        else:
            board._put(1, scoreboard._HEARTBEAT, time.monotonic() - 2 * accept.STALE_SECONDS)
        runner = web.ServerRunner(web.Server(_answer))
        await runner.setup()
        clients = _queue(sock, 10)
        try:
            site = accept.BalancedSite(runner, sock, board, board.slot(0))
            site._on_readable()
            await asyncio.sleep(0.1)
            assert site._open_connections() == taken
            assert accept.queued_connections(sock) == 10 - taken
        finally:
            for client in clients:
                client.close()
            await runner.cleanup()
            board.close()
            sock.close()

    asyncio.run(check())
