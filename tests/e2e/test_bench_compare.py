"""The comparison benchmark's self-check: its quick version deploys both
setups, runs every shape and client, the worker events and the host cases,
and writes every table and plot. No figure is asserted: speed is the
benchmark's business (make bench-compare), not a test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_KEYS = {"rps", "p50_ms", "p99_ms", "max_ms", "failed", "periods_delta", "throttled_delta"}


@pytest.mark.e2e
def test_the_quick_comparison_produces_every_result(
    crds: None, kubeconfig: str, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "compare" / "compare.py"),
            "--quick",
            "--out",
            str(out),
        ],
        check=True,
        timeout=900,
    )
    data = json.loads((out / "compare-quick.json").read_text())
    cells = {(r["setup"], r["shape"], r["client"]) for r in data["runs"]}
    assert len(cells) == 2 * len(data["shapes"]) * 2
    for run in data["runs"]:
        assert set(run) >= RUN_KEYS
        assert run["requests"] > 0
    # Each run's answers were 200s: a wrong path or header shows up here.
    assert sum(r["failed"] for r in data["runs"]) < sum(r["requests"] for r in data["runs"]) / 100
    assert {(e["setup"], e["event"]) for e in data["events"]} and len(data["events"]) == 6
    for event in data["events"]:
        assert event["requests"] > 0 and event["timeline"]
    assert set(data["memory_per_worker_mib"]["idle"]) == {"pods", "prefork"}
    assert data["host"]["auto_workers"]["one CPU"] == 1
    assert set(data["host"]["runs"]) == {"one CPU", "two CPUs"}
    table = (out / "compare-quick.md").read_text()
    for heading in (
        "| shape | client | conns |",
        "## Adding a worker",
        "## Without an orchestrator",
    ):
        assert heading in table
    for png in ("compare-quick.png", "compare-quick-throttling.png", "compare-quick-events.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
