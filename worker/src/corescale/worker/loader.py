"""Finding the user's application factory from `package.module:factory`.

Importing happens before any socket is bound or worker forked, so a typo in
APP is a usage error (exit 2) with the import error spelled out, and in
prefork mode the imported code is shared copy-on-write by every worker.
Calling the factory happens later, inside each serving process's event loop,
because an aiohttp Application belongs to one loop.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import web

from corescale.worker.errors import AppImportError, BootError

log = logging.getLogger(__name__)

Factory = Callable[[], web.Application | Awaitable[web.Application]]


def load_factory(spec: str) -> Factory:
    """Import `module:attribute` and return the callable it names.

    The current directory goes on sys.path first, as with `python -m` and
    gunicorn, so `corescale-worker myapp:create` works from a project folder.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise AppImportError(
            f"APP {spec!r} must be 'package.module:factory', e.g. 'myapp.web:create_app'"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise AppImportError(
            f"cannot import APP {spec!r}: module {module_name!r} failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    target: object = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppImportError(
                f"cannot import APP {spec!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    if isinstance(target, web.Application):
        app = target
        return lambda: app
    if not callable(target):
        raise AppImportError(
            f"APP {spec!r} is a {type(target).__name__}, not a factory returning a web.Application"
        )
    return cast(Factory, target)


async def build_app(factory: Factory, spec: str) -> web.Application:
    """Call the factory (plain or async); anything it raises is a boot failure."""
    try:
        result = factory()
        if inspect.isawaitable(result):
            result = await result
    except SystemExit as exc:
        # Scripts give up this way; without this the process would end with
        # the factory's code (not one of ours) and no word about why.
        raise BootError(f"the factory of APP {spec!r} called sys.exit({exc.code!r})") from exc
    except Exception as exc:
        log.exception("the factory of APP %r raised", spec)
        raise BootError(f"the factory of APP {spec!r} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, web.Application):
        raise BootError(
            f"the factory of APP {spec!r} returned {type(result).__name__}, "
            "not an aiohttp web.Application"
        )
    return result
