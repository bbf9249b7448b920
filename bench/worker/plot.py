"""Draws bench/results/worker.png from worker.json: throughput, p99 latency, worker spread."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ENDPOINTS = ("/", "/cpu?ms=1")


def main(source: str, target: str) -> int:
    data = json.loads(Path(source).read_text())
    summary = data["summary"]
    names = list(summary)
    colors = [
        "#1f77b4" if n.startswith("corescale") else "#7f7f7f" if "gunicorn" in n else "#2ca02c"
        for n in names
    ]
    fig, axes = plt.subplots(1, 5, figsize=(22, 5.5))
    for column, endpoint in enumerate(ENDPOINTS):
        axis = axes[column]
        axis.barh(names, [summary[n][endpoint]["rps"] for n in names], color=colors)
        axis.set_title(f"requests/s on {endpoint}")
        axis.invert_yaxis()
        axis = axes[2 + column]
        axis.barh(names, [summary[n][endpoint]["p99_ms"] for n in names], color=colors)
        axis.set_title(f"p99 latency ms on {endpoint}")
        axis.invert_yaxis()
        axis.set_yticklabels([])
    axis = axes[4]
    multi = [n for n in names if summary[n]["workers"] > 1]
    rows = range(len(multi))
    height = 0.4
    axis.barh(
        [r - height / 2 for r in rows],
        [summary[n]["paced"]["busiest_share"] for n in multi],
        height,
        color=[colors[names.index(n)] for n in multi],
        label="paced (below saturation)",
    )
    axis.barh(
        [r + height / 2 for r in rows],
        [summary[n]["saturated"]["busiest_share"] for n in multi],
        height,
        color=[colors[names.index(n)] for n in multi],
        alpha=0.45,
        hatch="//",
        label="saturated",
    )
    axis.set_yticks(list(rows), multi)
    axis.axvline(50, color="black", linewidth=0.8)
    axis.axvline(100 * 1.2 / 2.2, color="red", linestyle="--", label="ratio 1.2 (54.5%)")
    axis.set_title("busiest worker's share of /pid, %")
    axis.set_xlim(40, 100)
    axis.invert_yaxis()
    axis.legend(loc="lower right", fontsize="small")
    fig.suptitle(
        f"corescale vs gunicorn vs node cluster: wrk -c{data['connections']}, "
        f"{data['seconds']} s x {data['rounds']} rounds, {data['machine_before']['date']}"
    )
    fig.tight_layout()
    fig.savefig(target, dpi=90)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
