"""The scoreboard's figures in the Prometheus text exposition format (0.0.4).

Kept apart from scoreboard.py: the shared file's layout is what the prefork
master and the accept strategy depend on, this text is what a scraper (and
the operator, docs/contract.md's metric names) depends on.
"""

from __future__ import annotations

from corescale.worker.scoreboard import BUCKETS, PodFigures

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def render(pod: PodFigures) -> bytes:
    """Every figure of ``pod``, per-worker series labelled with the slot number."""
    lines: list[str] = []

    def family(name: str, kind: str, text: str) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")

    family("corescale_requests_total", "counter", "Requests answered, by status code.")
    for slot in pod.slots:
        for code, count in slot.codes:
            lines.append(
                f'corescale_requests_total{{worker="{slot.worker}",code="{code}"}} {_number(count)}'
            )
    family(
        "corescale_request_duration_seconds",
        "histogram",
        "Time from the request's arrival in the app to its response.",
    )
    for slot in pod.slots:
        i = slot.worker
        cumulative = 0.0
        for count, bound in zip(slot.buckets, (*BUCKETS, float("inf")), strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(
                f'corescale_request_duration_seconds_bucket{{worker="{i}",le="{le}"}} '
                f"{_number(cumulative)}"
            )
        lines.append(
            f'corescale_request_duration_seconds_sum{{worker="{i}"}} {_number(slot.latency_sum)}'
        )
        lines.append(
            f'corescale_request_duration_seconds_count{{worker="{i}"}} '
            f"{_number(slot.latency_count)}"
        )
    family(
        "corescale_request_busy_seconds_total",
        "counter",
        "Seconds requests have spent in flight: answered ones' durations plus the age of "
        "those still running (its rate is the average number of requests in flight).",
    )
    for slot in pod.slots:
        lines.append(
            f'corescale_request_busy_seconds_total{{worker="{slot.worker}"}} '
            f"{_number(slot.busy_seconds)}"
        )
    family("corescale_requests_in_flight", "gauge", "Requests being handled now.")
    for slot in pod.slots:
        lines.append(
            f'corescale_requests_in_flight{{worker="{slot.worker}"}} {_number(slot.in_flight)}'
        )
    family("corescale_connections", "gauge", "Open client connections.")
    for slot in pod.slots:
        lines.append(f'corescale_connections{{worker="{slot.worker}"}} {_number(slot.connections)}')
    family(
        "corescale_process_cpu_seconds_total",
        "counter",
        "CPU time (user and system) of the serving processes and the master.",
    )
    for slot in pod.slots:
        lines.append(
            f'corescale_process_cpu_seconds_total{{worker="{slot.worker}"}} '
            f"{_number(slot.cpu_seconds)}"
        )
    if pod.master_cpu is not None:
        lines.append(
            f'corescale_process_cpu_seconds_total{{worker="master"}} {_number(pod.master_cpu)}'
        )
    family("corescale_workers", "gauge", "Serving processes alive in this pod.")
    lines.append(f"corescale_workers {_number(pod.workers)}")
    family(
        "corescale_worker_restarts_total",
        "counter",
        "Workers that died unasked and were replaced (prefork).",
    )
    lines.append(f"corescale_worker_restarts_total {_number(pod.restarts)}")
    lines.append("")
    return "\n".join(lines).encode()
