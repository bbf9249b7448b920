"""Applications the worker tests start as APP (`apps:...`, with this folder on PYTHONPATH)."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from corescale.worker.app import create_app


async def slow_factory() -> web.Application:
    """An async factory that takes a while, like one that connects to a database first."""
    await asyncio.sleep(float(os.environ.get("SLOW_FACTORY_SECONDS", "2")))
    return create_app()


def raising_factory() -> web.Application:
    """A factory that fails every time."""
    raise RuntimeError("database unreachable")


def not_an_app() -> str:
    """A factory that returns the wrong thing."""
    return "not an application"


def crashing_factory() -> web.Application:
    """Boots fine, then the process dies shortly after: a crash loop in prefork."""
    app = create_app()

    async def die_soon(app: web.Application) -> None:
        asyncio.get_running_loop().call_later(0.3, os._exit, 1)

    app.on_startup.append(die_soon)
    return app


def orphan_factory() -> web.Application:
    """/orphan leaves a grandchild behind that is reparented to PID 1 when it ends."""
    app = create_app()

    async def orphan(request: web.Request) -> web.Response:
        shell = await asyncio.create_subprocess_exec("sh", "-c", "sleep 0.3 & exit 0")
        await shell.wait()
        return web.Response(text="orphaned\n")

    app.router.add_get("/orphan", orphan)
    return app


def exiting_factory() -> web.Application:
    """A factory that gives up the way scripts do: sys.exit(1)."""
    raise SystemExit(1)
