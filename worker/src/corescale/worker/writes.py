"""Answers leave together: a connection's writes wait, briefly, for the others of the loop's turn.

Why: under load, one turn of the event loop answers many connections.
aiohttp hands each answer to its socket at once, so the process goes back
and forth between its own code and the kernel's (send, and waking the
client) once per answer. Holding the writes until the end of the turn and
sending them one after another costs the same system calls but did the
work in less CPU time: side by side on `/` with 64 keep-alive connections,
a fifth more requests per second than sending each at once (docs/worker.md,
*Answers sent together*, has the runs). Node's HTTP server does the same
for the same reason: it corks a response's socket and uncorks it on the
next tick.

Alone: an answer is sent at once when no other connection of the loop has
a request open and nothing is held, since nothing would join it. So a
lone client (sequential requests, a stream, a quiet hour) pays neither the
wait nor the extra turn of the loop that sending the batch takes.

The bound: a batch is sent at the end of the turn, or at the first write
after it has waited `max_delay`, whichever comes first; so a turn of slow
(CPU-bound) requests does not hold the first answer until the last is done
(without the bound the p99 of `/cpu?ms=1` rose by about half). A
connection holding `MAX_PENDING` bytes sends them at once, so a handler
that streams a large body without yielding does not pile it up here.

Order: each connection's bytes leave in the order they were written; close,
write_eof and anything else that must come after the data send what waits
first, and abort drops it, as the socket would.

Files: aiohttp sends a FileResponse with `loop.sendfile` on the connection's
transport when the loop has a sendfile of its own (asyncio's loops do), and
that goes around any wrapper, past the held head. So writes are batched
only under a loop without one (uvloop, the worker's loop whenever it is
installed), where aiohttp sends files with ordinary writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, Protocol

MAX_PENDING = 64 * 1024
"""Bytes one connection may hold back; a larger write is sent at once, after those before it."""

Data = bytes | bytearray | memoryview

_clock = time.perf_counter


def can_batch(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `loop` sends every byte through the transport's writes (module docstring, Files)."""
    return type(loop).sendfile is asyncio.AbstractEventLoop.sendfile


class Company(Protocol):
    """Who else may be answering on this loop (connections.ReadQueue)."""

    busy: int
    """Connections with a request open, the writing one included."""


class WriteBatch:
    """The held writes of one event loop's connections, sent together at the end of its turn."""

    __slots__ = ("_held", "_loop", "_scheduled", "_started", "company", "max_delay")

    def __init__(self, loop: asyncio.AbstractEventLoop, max_delay: float, company: Company) -> None:
        self._loop = loop
        self.company = company
        self.max_delay = max_delay
        """Seconds a batch may grow after its first write before the next write sends it."""
        self._held: list[BatchedTransport] = []
        self._started = 0.0
        self._scheduled = False

    def hold(self, transport: BatchedTransport) -> None:
        """`transport` has its first write of this batch waiting: send it with the batch."""
        if not self._held:
            self._started = _clock()
        self._held.append(transport)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._end_of_turn)

    def due(self) -> bool:
        """Whether the batch, with a write just held, has waited long enough to go now."""
        return _clock() - self._started > self.max_delay

    def send(self) -> None:
        """Every held write, now, each connection's in order."""
        held, self._held = self._held, []
        for transport in held:
            try:
                transport.send_held()
            except Exception as exc:
                # What the loop does with a failing callback: one broken
                # connection must not keep the others' answers back.
                self._loop.call_exception_handler(
                    {"message": "sending a held write failed", "exception": exc}
                )

    def _end_of_turn(self) -> None:
        self._scheduled = False
        self.send()


class BatchedTransport(asyncio.Transport):
    """The transport aiohttp's connection handler writes to: writes wait for the batch.

    Everything but writing is the socket's own transport's; whatever must
    come after the data (close, write_eof) sends the held bytes first.
    """

    __slots__ = ("_batch", "_held", "_held_size", "_real")

    def __init__(self, real: asyncio.Transport, batch: WriteBatch) -> None:
        super().__init__()
        self._real = real
        self._batch = batch
        self._held: list[bytes] = []
        self._held_size = 0

    def write(self, data: Data) -> None:
        if not data:
            return
        if self._real.is_closing():
            # The transport's own answer to a late write (it drops it).
            self._real.write(data)
            return
        batch = self._batch
        if not self._held and batch.company.busy <= 1 and not batch._held:
            # Alone (module docstring): nothing would join this write.
            self._real.write(data)
            return
        size = len(data)
        if self._held_size + size > MAX_PENDING:
            self.send_held()
            self._real.write(data)
            return
        if not self._held:
            batch.hold(self)
        # The caller may reuse a mutable buffer once write returns.
        self._held.append(data if type(data) is bytes else bytes(data))
        self._held_size += size
        if batch.due():
            batch.send()

    def writelines(self, list_of_data: Iterable[Data]) -> None:
        for data in list_of_data:
            self.write(data)

    def send_held(self) -> None:
        """What this connection holds back, to the socket now."""
        if not self._held:
            return
        held, self._held, self._held_size = self._held, [], 0
        if self._real.is_closing():
            return
        self._real.write(held[0] if len(held) == 1 else b"".join(held))

    def write_eof(self) -> None:
        self.send_held()
        self._real.write_eof()

    def can_write_eof(self) -> bool:
        return self._real.can_write_eof()

    def close(self) -> None:
        self.send_held()
        self._real.close()

    def abort(self) -> None:
        self._held, self._held_size = [], 0
        self._real.abort()

    def is_closing(self) -> bool:
        return self._real.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._real.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._real.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._real.get_protocol()

    def is_reading(self) -> bool:
        return self._real.is_reading()

    def pause_reading(self) -> None:
        self._real.pause_reading()

    def resume_reading(self) -> None:
        self._real.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._real.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._real.get_write_buffer_size() + self._held_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._real.get_write_buffer_limits()
