"""The scale benchmark's self-check: its --quick version (6 simulated nodes,
5 CoreClusters, 15 workers) runs on the cluster and produces every column,
the table and the plot. No figure is asserted: that is the benchmark's
business (make bench-scale), not a test's. It removes its nodes itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_the_quick_scale_benchmark_produces_every_result(
    crds: None, kubeconfig: str, tmp_path: Path
) -> None:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "scale" / "run.py"),
            "--quick",
            "--out",
            str(tmp_path),
        ],
        check=True,
        timeout=1200,
    )
    results = json.loads((tmp_path / "scale.json").read_text())
    for phase in ("idle", "ready", "after_changes", "restart"):
        assert results[phase]["rss_mib"] > 0, phase
    assert {"writes", "corecluster_reads"} <= results["idle_requests"].keys()
    assert results["ready"]["writes"] > 0
    for series in ("change_to_deployment", "change_settled"):
        changes = results[series]
        assert changes["n"] == 5 and changes["p50_s"] <= changes["p99_s"] <= changes["max_s"]
        # From the PATCH's answer is the same change seen later, so never longer.
        assert changes["after_patch_p50_s"] <= changes["after_patch_p99_s"]
        assert changes["after_patch_max_s"] <= changes["max_s"]
    assert {"all_seen_s", "writes"} <= results["restart"].keys()
    # 5 CoreClusters of 3 workers on 6 nodes in 3 zones: the default spread
    # puts one of each in every zone, on nodes of its own where it can (the
    # node spread is soft, so one doubling is let pass).
    spread = results["spread"]
    assert (spread["pods"], spread["zones"], spread["worst_zone_over_share"]) == (15, 3, 0)
    assert 1 <= spread["most_on_one_node"] <= 2
    table = (tmp_path / "scale.md").read_text()
    assert table.count("\n| ") == 16, table
    assert (tmp_path / "scale.png").stat().st_size > 0
