"""The autoscaling benchmark's self-check: its short schedule runs on the
cluster and produces every column, table and plot. No figure is asserted:
speed is the benchmark's business (make bench-autoscale), not a test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "decision_after_step_s",
    "capacity_serving_after_step_s",
    "workers_before_step",
    "workers_decided",
    "p99_first_60s_after_step_ms",
    "p99_all_ms",
    "failed",
    "requests",
    "direction_changes_steady",
    "min_workers",
    "max_workers",
}


@pytest.mark.e2e
def test_the_quick_autoscaling_benchmark_produces_every_result(
    crds: None, kubeconfig: str, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "autoscale" / "run.py"),
            "--quick",
            "--out",
            str(out),
        ],
        check=True,
        timeout=900,
    )
    data = json.loads((out / "autoscale-quick.json").read_text())
    assert set(data["setups"]) == {"cs", "hpa"}
    for setup in data["setups"].values():
        assert set(setup) == KEYS
        assert setup["requests"] > 0
    assert data["timeline"] and data["rate"] and data["p99_per_5s"]["cs"]
    assert set(data["gathering"]) >= {"cpu_percent_gathering", "cpu_percent_for_gathering"}
    table = (out / "autoscale-quick.md").read_text()
    assert "| decision after the step (s) |" in table
    assert "direction changes under the steady load" in table
    assert (out / "autoscale-quick.png").read_bytes()[:4] == b"\x89PNG"
