"""Malformed requests are logged once per kind and interval, on one line, without a traceback."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from corescale.worker.clienterrors import ClientErrorFilter


def _record(error: BaseException | None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error is not None else None
    return logging.LogRecord(
        "aiohttp.server",
        logging.ERROR,
        __file__,
        1,
        "Error handling request from %s",
        ("10.0.0.7",),
        exc_info,
    )


def test_one_line_per_kind_and_interval_counting_the_rest() -> None:
    quiet = ClientErrorFilter(interval=3600)
    first = _record(BadHttpMessage("Invalid\nheader\r\nX-Evil: 1"))
    assert quiet.filter(first)
    assert first.exc_info is None and first.levelno == logging.WARNING
    message = first.getMessage()
    assert "\n" not in message and "10.0.0.7" in message and "BadHttpMessage" in message
    assert not any(quiet.filter(_record(BadHttpMessage("again"))) for _ in range(50))
    assert quiet.filter(_record(LineTooLong("x" * 9000, "8190")))  # another kind

    prompt = ClientErrorFilter(interval=0)
    prompt.filter(_record(BadHttpMessage("one")))
    later = _record(BadHttpMessage("two"))
    assert prompt.filter(later)
    assert "0 more of this kind" in later.getMessage()


def test_other_records_pass_unchanged() -> None:
    crash = _record(RuntimeError("handler bug"))
    assert ClientErrorFilter().filter(crash)
    assert crash.levelno == logging.ERROR and crash.exc_info is not None
