"""The host's Prometheus (``hack/cluster.sh prometheus``) for end-to-end tests:
start it, ask it PromQL through its HTTP API, and lint an exposition with
promtool.

It is started once per machine and left running (the command is idempotent
and the cluster's stop ends it), scraping every pod annotated
``prometheus.io/scrape`` each second; tests tell their series apart by the
``namespace`` label, which is their own namespace.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

from tests.kube import http_get

ROOT = Path(__file__).resolve().parents[2]
URL = "http://127.0.0.1:9090"
"""hack/cluster/env.sh's PROMETHEUS_ADDRESS."""
START_TIMEOUT = 60 * 60
"""The first start builds Prometheus from source: minutes on two shared cores."""


def start() -> str:
    """Build (once) and start Prometheus unless it runs; return its URL."""
    proc = subprocess.run(
        [str(ROOT / "hack" / "cluster.sh"), "prometheus"],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`hack/cluster.sh prometheus` failed ({proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return URL


def query(expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query's vector (``at``: Unix time, default now); errors raise."""
    params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
    answer = json.loads(http_get(f"{URL}/api/v1/query?{urllib.parse.urlencode(params)}"))
    if answer.get("status") != "success":
        raise RuntimeError(f"query {expr!r} failed: {answer}")
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def value(expr: str, at: float | None = None) -> float | None:
    """The single value an aggregating query returns, or None when it returns nothing."""
    result = query(expr, at)
    if not result:
        return None
    assert len(result) == 1, f"{expr!r} returned {len(result)} series: {result}"
    return float(result[0]["value"][1])


def check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` of an exposition: its lint of names, types and help."""
    return subprocess.run(
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
