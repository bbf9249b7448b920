"""The event loop every serving process runs: uvloop when it is installed."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

log = logging.getLogger(__name__)

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop if importable (the `fast` extra), else asyncio's own."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        log.debug("uvloop is not installed; using the asyncio event loop")
        return asyncio.new_event_loop
    return cast(Callable[[], asyncio.AbstractEventLoop], uvloop.new_event_loop)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to the end in a fresh loop, then closes the loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
