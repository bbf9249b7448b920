"""A real Prometheus (hack/cluster.sh prometheus) scrapes CoreClusters the
conventional way, and the operator's own metrics hold up.

For each mode: Prometheus finds the worker pods through the API server by
their ``prometheus.io/*`` annotations alone; the request rate it computes
over the CoreCluster's pods accounts for the requests this test sent, up to
the extrapolation of one scrape interval at each end of the window; the
README's PromQL queries return this CoreCluster's series; ``promtool check
metrics`` accepts the exposition of every worker pod and of the operator;
and the operator's reconcile counter moves when the CoreCluster changes.
"""

from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import prom
from tests.e2e.operator_helpers import (
    OperatorProcess,
    apply,
    corecluster,
    items,
    wait_ready,
    wait_serving,
)
from tests.kube import http_get, kubectl, wait_for

pytestmark = pytest.mark.e2e

log = logging.getLogger(__name__)

NAME = "scraped"
MODES: dict[str, dict[str, Any]] = {
    "pods": {"replicas": 2},
    "prefork": {"mode": "prefork", "replicas": 2, "workersPerPod": 2},
}
WORKERS = 2
REQUESTS = 300
README = Path(__file__).resolve().parents[2] / "README.md"
LEAD = 10
"""Seconds of samples before the first request: the rate's window reaches that far
back, so that the extrapolation at its ends is small against the window."""
COUNT = "corescale_request_duration_seconds_count"
"""Requests per worker, present (at zero) from a worker's start, unlike the per-code counter."""


def readme_queries() -> list[str]:
    """The PromQL lines of the README's block between the promql markers."""
    block = re.search(r"<!-- promql -->\n```promql\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md has no <!-- promql --> block"
    return [
        line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")
    ]


def operator_samples(
    operator: OperatorProcess,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The operator's /metrics, by sample name and labels."""
    found = {}
    for family in text_string_to_metric_families(http_get(operator.metrics_url)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all(dict(ls).get(k) == want for k, want in labels.items())
    )


@pytest.mark.parametrize("mode", MODES)
def test_prometheus_scrapes_a_corecluster(
    mode: str, namespace: str, operator: OperatorProcess, prometheus: str
) -> None:
    apply(namespace, corecluster(NAME, cpuRequest="50m", **MODES[mode]))
    wait_ready(namespace, NAME, WORKERS)
    url = wait_serving(namespace, NAME)
    pods = items(namespace, "pods", f"corescale.io/cluster={NAME}")
    selector = f'namespace="{namespace}",corescale_io_cluster="{NAME}"'

    # Found by discovery and scraped: one target per pod, one series per worker,
    # each with a few samples before the first request.
    wait_for(
        f"Prometheus to scrape the {len(pods)} pods",
        lambda: prom.value(f"count(up{{{selector}}} == 1)") == len(pods),
        timeout=60,
    )
    wait_for(
        f"{WORKERS} worker series with {LEAD} samples each",
        lambda: (
            prom.value(f"count(count_over_time({COUNT}{{{selector}}}[{LEAD}s]) >= {LEAD})")
            == WORKERS
        ),
        timeout=60,
    )
    baseline = prom.value(f"sum({COUNT}{{{selector}}})")
    assert baseline is not None

    started = time.time()
    for _ in range(REQUESTS):
        http_get(url)  # raises unless answered 200
    sent = REQUESTS
    wait_for(
        "Prometheus to see every request",
        lambda: prom.value(f"sum({COUNT}{{{selector}}})") == baseline + sent,
        timeout=30,
        interval=0.5,
    )
    now = time.time()
    window = math.ceil(now - started) + LEAD
    rate = prom.value(f"sum(rate({COUNT}{{{selector}}}[{window}s]))", at=now)
    assert rate is not None
    estimate = rate * window
    # The window holds samples from before the first request and after the
    # last, so the samples' increase is exactly what was sent; rate() then
    # extrapolates it from the first and last sample to the window's ends,
    # at most 1.1 average scrape intervals each side (a loaded machine
    # scrapes a little late: the interval is measured, not assumed).
    samples = prom.value(f"min(count_over_time({COUNT}{{{selector}}}[{window}s]))", at=now)
    assert samples is not None and samples > 2
    interval = window / (samples - 1)
    upper = sent * window / (window - 2 * 1.1 * interval)
    log.info(
        "%s: sent %d requests in %.1fs; sum(rate[%ds]) = %.3f/s, times the window %.1f "
        "(at most %.1f; %d samples per worker)",
        mode,
        sent,
        now - started,
        window,
        rate,
        estimate,
        upper,
        samples,
    )
    assert sent - 0.5 <= estimate <= upper, (sent, estimate, upper)

    # The README's queries return this CoreCluster's figures.
    for expr in readme_queries():
        mine = [
            float(r["value"][1])
            for r in prom.query(expr)
            if r["metric"].get("namespace") == namespace
            and r["metric"].get("corescale_io_cluster") == NAME
        ]
        log.info("%s: %s -> %s", mode, expr, mine)
        assert len(mine) == 1 and mine[0] > 0 and math.isfinite(mine[0]), (expr, mine)

    # promtool accepts every pod's exposition and the operator's.
    for pod in pods:
        text = http_get(f"http://{pod['status']['podIP']}:8080/metrics")
        checked = prom.check_metrics(text)
        assert checked.returncode == 0, (pod["metadata"]["name"], checked.stdout, checked.stderr)
    checked = prom.check_metrics(http_get(operator.metrics_url))
    assert checked.returncode == 0, ("operator", checked.stdout, checked.stderr)

    # A change of the CoreCluster is a reconcile the operator counts.
    before = operator_samples(operator)
    reconciles = total(before, "corescale_operator_reconciles_total")
    more = WORKERS + MODES[mode].get("workersPerPod", 1)
    kubectl(
        "patch",
        "-n",
        namespace,
        "corecluster",
        NAME,
        "--type=merge",
        "-p",
        f'{{"spec":{{"replicas":{more}}}}}',
    )
    labels = {"namespace": namespace, "corecluster": NAME}

    def counted() -> bool:
        after = operator_samples(operator)
        return (
            total(after, "corescale_operator_reconciles_total") > reconciles
            and total(after, "corescale_operator_workers_desired", **labels) == more
            and total(after, "corescale_operator_api_writes_total", kind="Deployment", verb="apply")
            > total(before, "corescale_operator_api_writes_total", kind="Deployment", verb="apply")
        )

    wait_for("the operator to count the reconcile", counted, timeout=60)
    wait_ready(namespace, NAME, more)
    after = operator_samples(operator)
    assert total(after, "corescale_operator_workers_ready", **labels) == more
    assert total(after, "corescale_operator_coreclusters", condition="Ready", status="True") == 1
