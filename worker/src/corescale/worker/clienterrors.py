"""Malformed requests in the log: one line per kind of mistake and minute, no traceback.

aiohttp logs every request it cannot parse at ERROR with a traceback
(about 550 bytes), so any anonymous client can write half a megabyte of log
per thousand bad requests, and a real server error drowns among them. The
client already got its 400; the log only needs to say that such requests
arrive, what kind, from where, and how many. So the filter installed on
aiohttp's server logger turns each of these records into one WARNING line
without the traceback, at most one per kind (the exception's class) per
REPORT_SECONDS, counting the ones it held back in the meantime. Every other
record of that logger (a handler's unhandled exception) passes unchanged.
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

REPORT_SECONDS = 60.0
SERVER_LOGGER = "aiohttp.server"
_DETAIL_CHARS = 120


class ClientErrorFilter(logging.Filter):
    """Rate-limits and shortens aiohttp's records of requests it could not parse."""

    def __init__(self, interval: float = REPORT_SECONDS) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        kind = type(error).__name__
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        # The client's own bytes, quoted on one line: they cannot forge log lines.
        detail = repr(" ".join(str(error.message).split())[:_DETAIL_CHARS])
        record.msg = (
            "bad request from %s: %s %s (%d more of this kind held back since the last "
            "report; the next one in %.0fs at the earliest)"
        )
        record.args = (remote, kind, detail, held, self._interval)
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.exc_info = record.exc_text = None
        return True


def install() -> None:
    """Puts the filter on aiohttp's server logger (once per process)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ClientErrorFilter) for f in logger.filters):
        logger.addFilter(ClientErrorFilter())
