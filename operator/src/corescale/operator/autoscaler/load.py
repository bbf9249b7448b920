"""From the workers' ``/metrics`` to the load of a CoreCluster: pure functions.

Each worker pod publishes, per serving process, the time its requests have
spent in flight so far (``corescale_request_busy_seconds_total``: answered
requests' durations plus the age of those still running). Its growth per
second between two scrapes is exactly the average number of requests in
flight over that interval, with no sampling noise and no lag for long
requests. Workers that predate that counter publish the requests in flight
now (a gauge) and the summed duration of answered requests; from those the
load is the larger of the gauge and the duration sum's growth per second
(Little's law), so a burst of long requests still counts.

A counter that went back (the pod's processes restarted) is not read as a
dip: that round uses the gauge alone. A pod that did not answer is left out
and the answering pods' load is scaled up to every ready worker, so a silent
pod is never read as an idle one; a round where none answered is no sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from corescale.operator.autoscaler.decision import Sample

IN_FLIGHT = "corescale_requests_in_flight"
BUSY_SECONDS = "corescale_request_duration_seconds_sum"
BUSY_TOTAL = "corescale_request_busy_seconds_total"
WORKERS = "corescale_workers"


class MetricsError(ValueError):
    """The text is not a corescale worker's exposition."""


@dataclass(frozen=True)
class Reading:
    """What one scrape of one pod said, summed over its serving processes."""

    time: float
    in_flight: float
    busy_seconds: float
    workers: int
    busy_total: float | None = None
    """The exact in-flight integral, when the worker publishes it."""


def _sample_value(line: str) -> tuple[str, float]:
    """Name and value of a sample line: ``name{labels} value [timestamp]``."""
    if "{" in line:
        name, rest = line[: line.index("{")], line[line.rindex("}") + 1 :].split()
    else:
        name, *rest = line.split()
    try:
        return name, float(rest[0])
    except (IndexError, ValueError):
        raise MetricsError(f"not a sample line: {line!r}") from None


def parse(text: str, time: float) -> Reading:
    """The figures the autoscaler needs from one exposition, taken at ``time``."""
    totals = {IN_FLIGHT: 0.0, BUSY_SECONDS: 0.0, BUSY_TOTAL: 0.0}
    seen_total = False
    workers: float | None = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = _sample_value(line)
        if name in totals:
            totals[name] += value
            seen_total = seen_total or name == BUSY_TOTAL
        elif name == WORKERS:
            workers = value
    if workers is None:
        raise MetricsError(f"no {WORKERS} in the exposition: is this a corescale worker?")
    return Reading(
        time,
        totals[IN_FLIGHT],
        totals[BUSY_SECONDS],
        int(workers),
        totals[BUSY_TOTAL] if seen_total else None,
    )


def concurrency(previous: Reading | None, current: Reading) -> float:
    """The pod's average requests in flight since ``previous``."""
    if (
        previous is None
        or current.time <= previous.time
        or current.busy_seconds < previous.busy_seconds
    ):
        return current.in_flight
    elapsed = current.time - previous.time
    if current.busy_total is not None and previous.busy_total is not None:
        if current.busy_total < previous.busy_total:
            return current.in_flight
        return (current.busy_total - previous.busy_total) / elapsed
    little = (current.busy_seconds - previous.busy_seconds) / elapsed
    return max(little, current.in_flight)


def cluster_sample(
    time: float,
    loads: Mapping[str, tuple[float, int]],
    ready_workers: int,
) -> Sample | None:
    """One round for a CoreCluster: ``loads`` maps each pod that answered to
    (its concurrency, its workers); ``ready_workers`` counts every worker in a
    ready pod. None when no pod answered."""
    answered = sum(workers for _, workers in loads.values())
    if answered <= 0:
        return None
    load = sum(value for value, _ in loads.values())
    scale = max(ready_workers, answered) / answered
    return Sample(time, load * scale, max(ready_workers, answered))
