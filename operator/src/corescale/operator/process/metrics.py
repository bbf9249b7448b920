"""The operator's own Prometheus metrics, defined in one place.

The modules that act (reconcile.py, kube.py, gather.py) record with one call
each; what is measured, under which name and with which labels is decided
here, so that the names stay consistent and docs/operator.md has one list to
follow. The figures live in prometheus_client's default registry, next to
its process and Python collectors, and :func:`serve` publishes them on a
port of their own (``CORESCALE_METRICS``), apart from the liveness endpoint.

The per-CoreCluster series (conditions, workers) are removed when the
operator forgets a CoreCluster, so a deleted one leaves no stale series.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

Key = tuple[str, str]

RECONCILES = Counter(
    "corescale_operator_reconciles_total",
    "Reconciles of a CoreCluster, by result: ok, invalid (only a new spec helps), "
    "transient (retried in seconds) or error (retried every resync).",
    ["result"],
)
RECONCILE_SECONDS = Histogram(
    "corescale_operator_reconcile_duration_seconds",
    "Time one reconcile of a CoreCluster took, API calls included.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
API_WRITES = Counter(
    "corescale_operator_api_writes_total",
    "Writes to the Kubernetes API, by kind of object, verb and result (ok or error).",
    ["kind", "verb", "result"],
)
CORECLUSTERS = Gauge(
    "corescale_operator_coreclusters",
    "CoreClusters known to this operator, by condition type and status.",
    ["condition", "status"],
)
WORKERS_DESIRED = Gauge(
    "corescale_operator_workers_desired",
    "Worker processes a CoreCluster should run (spec, or the autoscaler's count).",
    ["namespace", "corecluster"],
)
WORKERS_READY = Gauge(
    "corescale_operator_workers_ready",
    "Worker processes of a CoreCluster in ready pods.",
    ["namespace", "corecluster"],
)
SCRAPE_ROUNDS = Counter(
    "corescale_operator_autoscaler_rounds_total",
    "Rounds of the autoscaler: one scrape of every autoscaled CoreCluster's ready pods.",
)
SCRAPES = Counter(
    "corescale_operator_autoscaler_scrapes_total",
    "Scrapes of a worker pod's /metrics by the autoscaler.",
)
SCRAPE_ERRORS = Counter(
    "corescale_operator_autoscaler_scrape_errors_total",
    "Scrapes of a worker pod's /metrics that failed (connection, timeout, unreadable text).",
)
DECISIONS = Counter(
    "corescale_operator_autoscaler_decisions_total",
    "The autoscaler's decisions, one per CoreCluster and round, by direction (up, down, hold).",
    ["namespace", "corecluster", "direction"],
)

CONDITIONS = ("Ready", "Progressing", "Degraded")
STATUSES = ("True", "False", "Unknown")

_conditions: dict[Key, dict[str, str]] = {}
"""Each CoreCluster's condition statuses, from which CORECLUSTERS is counted."""


def reconciled(result: str, seconds: float) -> None:
    RECONCILES.labels(result).inc()
    RECONCILE_SECONDS.observe(seconds)


def api_write(kind: str, verb: str, ok: bool) -> None:
    API_WRITES.labels(kind, verb, "ok" if ok else "error").inc()


def corecluster(
    key: Key,
    conditions: Iterable[Mapping[str, Any]],
    desired: int | None = None,
    ready: int | None = None,
) -> None:
    """Record a CoreCluster's new status; ``None`` leaves a worker figure as it was."""
    _conditions[key] = {
        str(c.get("type")): str(c.get("status", "Unknown"))
        for c in conditions
        if c.get("type") in CONDITIONS
    }
    _count_conditions()
    if desired is not None:
        WORKERS_DESIRED.labels(*key).set(desired)
    if ready is not None:
        WORKERS_READY.labels(*key).set(ready)


def decided(key: Key, current: int, replicas: int) -> None:
    direction = "up" if replicas > current else "down" if replicas < current else "hold"
    DECISIONS.labels(*key, direction).inc()


def forget(key: Key) -> None:
    """Drop a CoreCluster's series once it is gone."""
    if _conditions.pop(key, None) is not None:
        _count_conditions()
    # remove() of a series never recorded does nothing.
    WORKERS_DESIRED.remove(*key)
    WORKERS_READY.remove(*key)
    for direction in ("up", "down", "hold"):
        DECISIONS.remove(*key, direction)


def _count_conditions() -> None:
    """Every (condition, status) pair is set, zeros included, so a sum never lacks a series."""
    for condition in CONDITIONS:
        for status in STATUSES:
            count = sum(1 for seen in _conditions.values() if seen.get(condition) == status)
            CORECLUSTERS.labels(condition, status).set(count)


def serve(address: str) -> threading.Thread | None:
    """Serve ``/metrics`` on ``HOST:PORT`` from a daemon thread; empty disables it.

    A thread rather than the event loop: a scrape then never waits behind a
    busy reconcile, and the endpoint answers while kopf is still starting.
    An address in use raises OSError before kopf starts.
    """
    if not address:
        return None
    host, _, port = address.rpartition(":")
    _server, thread = prometheus_client.start_http_server(int(port), addr=host or "0.0.0.0")
    log.info("metrics on http://%s/metrics", address)
    return thread
