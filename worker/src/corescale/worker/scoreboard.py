"""The pod's scoreboard: every serving process's figures in one shared memory file.

Every serving process owns one slot of a shared mapping (a file in
CORESCALE_METRICS_DIR when that is set, else anonymous shared memory). The
request gate (health.py) notes each request in plain Python lists: its start
time when it enters the app; its start time again, its duration and its
status when it leaves. A list append is the cheapest thing Python does on
the hot path, where the histogram's bucket search and the per-code
arithmetic cost more than the rest of the counting together (callgrind,
docs/worker.md). The slot folds the lists into the shared
counters on every heartbeat (twice a second), before it answers /metrics,
and when it stops: sorted once, the durations fall into the buckets with one
bisection per bucket, not one per request. No locks, no system calls per
request. Whichever process answers /metrics reads all slots, so one scrape
tells the whole pod's load, each series carrying a `worker` label (the slot
number); another worker's figures are then at most one heartbeat old, which
is nothing next to a scrape interval.

A slot outlives the process in it: a worker that replaces a dead one takes
the same slot and keeps counting from where its predecessor stopped, so
counters stay monotonic across restarts and the set of `worker` label values
stays as small as the largest number of workers ever alive at once. The
master adds a dead worker's final CPU time (from wait4's rusage) to the slot.

The same slots carry what the prefork master and the balanced accept decide
with: each worker's state, pid, heartbeat and open connections. The
Prometheus text form of the figures is exposition.py's; this module only
knows where each figure lives in the file.
"""

from __future__ import annotations

import bisect
import enum
import logging
import mmap
import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import NamedTuple

log = logging.getLogger(__name__)

FILE_NAME = "corescale-metrics.db"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_SLOTS = 256
_MAGIC = 0x636F7265  # "core"

# Offsets, in float64 units. Slots are page-aligned so that workers never
# write to the same cache line or page.
_HEADER = 512
_SLOT = 1024
_H_MAGIC, _H_SLOTS_USED, _H_WORKERS, _H_MASTER_CPU, _H_RESTARTS, _H_DRAINING = range(6)
_STATE, _PID, _HEARTBEAT, _CONNECTIONS, _IN_FLIGHT, _CPU_BASE, _CPU_NOW, _AGES = range(8)
_BUCKET0 = 16
_SUM = _BUCKET0 + len(BUCKETS) + 1
_COUNT = _SUM + 1
_CODE0 = 48
_LOWEST_CODE, _HIGHEST_CODE = 100, 599


class SlotState(enum.IntEnum):
    """Where a serving process is in its life; the balanced accept reads READY."""

    FREE = 0
    BOOTING = 1
    READY = 2
    DRAINING = 3
    RETIRING = 4


class SlotFigures(NamedTuple):
    """One slot's figures as /metrics shows them; counts are floats, as stored."""

    worker: int
    """The slot number, the `worker` label."""
    codes: list[tuple[int, float]]
    """(status code, requests) for every code answered at least once."""
    buckets: list[float]
    """Requests per latency bucket of BUCKETS, and above the last one (not cumulative)."""
    latency_sum: float
    latency_count: float
    in_flight: float
    connections: float
    cpu_seconds: float
    busy_seconds: float
    """Answered requests' durations plus the age of those in flight at the last
    publish: its growth per second is the average number of requests in flight
    (what the operator's autoscaler reads)."""


class PodFigures(NamedTuple):
    """Every used slot's figures and the pod-wide ones from the header."""

    slots: list[SlotFigures]
    workers: float
    master_cpu: float | None
    """None when no prefork master reports (single mode)."""
    restarts: float


class Slot:
    """One serving process's own figures; the hot path of every request.

    A slot object is made in the process that serves with it, after the slot
    was claimed. Its request counters live in the shared slot itself and
    carry on from what its predecessor published, so a crash loses at most
    one heartbeat's worth of counts and counters never go back.

    The request gate writes the request figures directly, as list appends
    (a method call per request would cost as much as the counting itself):
    a request's start time (time.perf_counter) into `entered` when it enters
    the app, and when it leaves, its start time into `left`, its duration
    into `durations` and its status into `statuses`. `publish` folds them
    into the shared counters and the requests still in flight; until then
    they hold at most one heartbeat's requests, about 80 bytes each (1.2 MB
    at 30,000 requests a second).
    """

    __slots__ = (
        "_base",
        "_in_flight",
        "_in_flight_since",
        "_view",
        "durations",
        "entered",
        "index",
        "left",
        "statuses",
    )

    def __init__(self, view: memoryview[float], index: int) -> None:
        self._view = view
        self._base = _HEADER + index * _SLOT
        self.index = index
        self._in_flight = 0
        self._in_flight_since = 0.0
        """The sum of the in-flight requests' start times, as of the last publish."""
        self.entered: list[float] = []
        self.left: list[float] = []
        self.durations: list[float] = []
        self.statuses: list[int] = []

    def publish(self) -> None:
        """Adds the requests answered since the last publish to the shared slot.

        The lists are emptied in place: the gate holds them.
        """
        view, base = self._view, self._base
        entered, left = self.entered, self.left
        self._in_flight += len(entered) - len(left)
        # Exactly zero with nothing in flight: rounding never piles up.
        self._in_flight_since = (
            self._in_flight_since + sum(entered) - sum(left) if self._in_flight else 0.0
        )
        entered.clear()
        left.clear()
        durations = self.durations
        if durations:
            durations.sort()
            below = 0
            for offset, bound in enumerate(BUCKETS):
                upto = bisect.bisect_right(durations, bound, below)
                if upto > below:
                    view[base + _BUCKET0 + offset] += upto - below
                below = upto
            if below < len(durations):
                view[base + _BUCKET0 + len(BUCKETS)] += len(durations) - below
            view[base + _SUM] += sum(durations)
            view[base + _COUNT] += len(durations)
            durations.clear()
        statuses = self.statuses
        if statuses:
            for status, count in Counter(statuses).items():
                if _LOWEST_CODE <= status <= _HIGHEST_CODE:
                    view[base + _CODE0 + status - _LOWEST_CODE] += count
            statuses.clear()
        view[base + _IN_FLIGHT] = float(self._in_flight)
        view[base + _AGES] = self._in_flight * time.perf_counter() - self._in_flight_since

    @property
    def state(self) -> SlotState:
        return SlotState(int(self._view[self._base + _STATE]))

    @state.setter
    def state(self, value: SlotState) -> None:
        self._view[self._base + _STATE] = float(value)

    def beat(self, connections: int) -> None:
        """Heartbeat for the master, plus the figures only this process can read."""
        self.publish()
        view, base = self._view, self._base
        view[base + _HEARTBEAT] = time.monotonic()
        view[base + _CONNECTIONS] = float(connections)
        view[base + _CPU_NOW] = time.process_time()

    def set_connections(self, connections: int) -> None:
        self._view[self._base + _CONNECTIONS] = float(connections)


class Scoreboard:
    """The shared mapping: a header and MAX_SLOTS slots, created by the first process."""

    def __init__(self, directory: str | None) -> None:
        """The mapping in `directory`, or in anonymous shared memory when it is None.

        Without a folder nothing is left on disk whatever happens to the
        process (a SIGKILL used to leave a private folder in $TMPDIR behind):
        forked workers inherit an anonymous shared mapping just as well, and
        only outside inspection of the file is lost.
        """
        size = (_HEADER + MAX_SLOTS * _SLOT) * 8
        self.path: str | None = None
        if directory is None:
            self._map = mmap.mmap(-1, size, mmap.MAP_SHARED)
        else:
            try:
                os.makedirs(directory, exist_ok=True)
                self.path = os.path.join(directory, FILE_NAME)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.ftruncate(fd, size)
                    self._map = mmap.mmap(fd, size, mmap.MAP_SHARED)
                finally:
                    os.close(fd)
            except OSError as exc:
                log.warning(
                    "metrics folder %r is not usable (%s); keeping metrics in anonymous shared "
                    "memory",
                    directory,
                    exc,
                )
                self.path = None
                self._map = mmap.mmap(-1, size, mmap.MAP_SHARED)
        self._view = memoryview(self._map).cast("d")
        self._view[_H_MAGIC] = _MAGIC
        self._view[_H_MASTER_CPU] = -1.0

    def close(self) -> None:
        """Unmaps the shared memory (a file in the metrics folder stays for inspection)."""
        self._view.release()
        self._map.close()

    def slot(self, index: int) -> Slot:
        return Slot(self._view, index)

    def _at(self, index: int, field: int) -> float:
        return self._view[_HEADER + index * _SLOT + field]

    def _put(self, index: int, field: int, value: float) -> None:
        self._view[_HEADER + index * _SLOT + field] = value

    def claim(self, index: int, pid: int) -> None:
        """Prepares a slot for a new process; its counters carry on from the last one."""
        for field in (_CONNECTIONS, _IN_FLIGHT, _CPU_NOW, _AGES):
            self._put(index, field, 0.0)
        self._put(index, _PID, float(pid))
        self._put(index, _HEARTBEAT, time.monotonic())
        self._put(index, _STATE, float(SlotState.BOOTING))
        self._view[_H_SLOTS_USED] = max(self._view[_H_SLOTS_USED], float(index + 1))

    def release(self, index: int, cpu_seconds: float) -> None:
        """Marks a slot's process dead, folding its final CPU time into the slot's total."""
        self._put(index, _STATE, float(SlotState.FREE))
        self._put(index, _CPU_BASE, self._at(index, _CPU_BASE) + cpu_seconds)
        for field in (_CONNECTIONS, _IN_FLIGHT, _CPU_NOW, _AGES):
            self._put(index, field, 0.0)

    def set_pid(self, index: int, pid: int) -> None:
        self._put(index, _PID, float(pid))

    def state(self, index: int) -> SlotState:
        return SlotState(int(self._at(index, _STATE)))

    def heartbeat(self, index: int) -> float:
        return self._at(index, _HEARTBEAT)

    def set_workers(self, count: int) -> None:
        self._view[_H_WORKERS] = float(count)

    def set_master_cpu(self, seconds: float) -> None:
        self._view[_H_MASTER_CPU] = seconds

    def add_restart(self) -> None:
        self._view[_H_RESTARTS] += 1

    def set_draining(self) -> None:
        """The prefork master drains the pod: every worker's /readyz fails from now on."""
        self._view[_H_DRAINING] = 1.0

    @property
    def draining(self) -> bool:
        return bool(self._view[_H_DRAINING])

    def ready_connections(self, exclude: int, beating_since: float = 0.0) -> Iterator[float]:
        """Open connections of every READY slot but one: what a balanced accept compares with.

        Slots whose heartbeat is older than `beating_since` (a monotonic time)
        are left out: their process is not turning its event loop, so it
        cannot take a connection however few it has.
        """
        view = self._view
        for index in range(int(view[_H_SLOTS_USED])):
            if (
                index != exclude
                and self._at(index, _STATE) == SlotState.READY
                and self._at(index, _HEARTBEAT) >= beating_since
            ):
                yield self._at(index, _CONNECTIONS)

    def figures(self) -> PodFigures:
        """A reading of every slot that ever had a process, and of the header."""
        view = self._view
        slots = []
        for i in range(int(view[_H_SLOTS_USED])):
            if not self._at(i, _PID):
                continue
            base = _HEADER + i * _SLOT
            codes = [
                (_LOWEST_CODE + offset, view[base + _CODE0 + offset])
                for offset in range(_HIGHEST_CODE - _LOWEST_CODE + 1)
                if view[base + _CODE0 + offset]
            ]
            slots.append(
                SlotFigures(
                    worker=i,
                    codes=codes,
                    buckets=[view[base + _BUCKET0 + b] for b in range(len(BUCKETS) + 1)],
                    latency_sum=view[base + _SUM],
                    latency_count=view[base + _COUNT],
                    in_flight=self._at(i, _IN_FLIGHT),
                    connections=self._at(i, _CONNECTIONS),
                    cpu_seconds=self._at(i, _CPU_BASE) + self._at(i, _CPU_NOW),
                    busy_seconds=view[base + _SUM] + max(0.0, self._at(i, _AGES)),
                )
            )
        master_cpu = view[_H_MASTER_CPU]
        return PodFigures(
            slots=slots,
            workers=view[_H_WORKERS],
            master_cpu=master_cpu if master_cpu >= 0 else None,
            restarts=view[_H_RESTARTS],
        )
