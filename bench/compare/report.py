"""Tables and plots of ``make bench-compare``: medians over rounds, and ratios
taken within a round (pods over prefork), so that the machine's slow and fast
minutes fall on both setups alike."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RPS_GOAL, P99_GOAL = 0.9, 1.2
"""Pods mode at least 0.9 times prefork's throughput, p99 at most 1.2 times."""

Cell = tuple[str, str, int]
"""(shape, client, connections)."""


def _median(values: Iterable[float]) -> float:
    found = list(values)
    return statistics.median(found) if found else float("nan")


def summarize(data: dict[str, Any]) -> dict[str, Any]:
    """Per cell and setup: medians and throttling; per cell: round-by-round ratios and goals."""
    by_cell: dict[Cell, dict[str, list[dict[str, Any]]]] = {}
    for run in data["runs"]:
        cell = (run["shape"], run["client"], run["connections"])
        by_cell.setdefault(cell, {}).setdefault(run["setup"], []).append(run)
    cells: list[dict[str, Any]] = []
    for (shape, client, connections), setups in by_cell.items():
        row: dict[str, Any] = {"shape": shape, "client": client, "connections": connections}
        for setup, runs in setups.items():
            periods = sum(r["periods_delta"] for r in runs)
            row[setup] = {
                "rps": _median(r["rps"] for r in runs),
                "p50_ms": _median(r["p50_ms"] for r in runs),
                "p99_ms": _median(r["p99_ms"] for r in runs),
                "max_ms": max(r["max_ms"] for r in runs),
                "failed": sum(r["failed"] for r in runs),
                "throttled_share": sum(r["throttled_delta"] for r in runs) / periods
                if periods
                else 0.0,
                "throttled_s": sum(r["throttled_s_delta"] for r in runs) / len(runs),
            }
        rounds = {r["round"] for r in setups.get("pods", [])}
        ratios: dict[str, list[float]] = {"rps": [], "p99_ms": []}
        for number in sorted(rounds):
            pods = next(r for r in setups["pods"] if r["round"] == number)
            prefork = next((r for r in setups.get("prefork", []) if r["round"] == number), None)
            if prefork is None:
                continue
            for key, found in ratios.items():
                if prefork[key]:
                    found.append(pods[key] / prefork[key])
        row["rps_ratio"] = _median(ratios["rps"])
        row["p99_ratio"] = _median(ratios["p99_ms"])
        row["rps_ratios"] = ratios["rps"]
        row["p99_ratios"] = ratios["p99_ms"]
        row["rps_met"] = row["rps_ratio"] >= RPS_GOAL
        row["p99_met"] = row["p99_ratio"] <= P99_GOAL
        cells.append(row)
    host: dict[str, Any] = {}
    if data.get("host"):
        for case, servers in data["host"]["runs"].items():
            for server, shapes in servers.items():
                for shape, runs in shapes.items():
                    host.setdefault(case, {}).setdefault(server, {})[shape] = {
                        "rps": _median(r["rps"] for r in runs),
                        "p99_ms": _median(r["p99_ms"] for r in runs),
                        "failed": sum(r["failed"] for r in runs),
                    }
    return {"cells": cells, "host": host}


def _n(value: float, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def markdown(data: dict[str, Any], summary: dict[str, Any], suffix: str = "") -> str:
    before, after, budget = data["machine_before"], data["machine_after"], data["budget"]
    specs = data["specs"]
    lines = [
        "# One-CPU pods against prefork in one pod, on the same CPU budget",
        "",
        f"`{data['command']}` on {before['date']}: Kubernetes {before['kubernetes']}, one node "
        f"that is this machine ({before['cpus']} CPUs, {before['arch']}), Python "
        f"{before['python']}, {before['wrk']}. Load average before "
        f"{before['load_average']}, after {after['load_average']}.",
        "",
        f"Budget: {budget['workers']} workers of {budget['cpu_per_worker']} CPU each. "
        f"**pods**: {specs['pods']['replicas']} pods in pods mode, each one worker limited to "
        f"{budget['cpu_per_worker']}; **prefork**: one pod in prefork mode with "
        f"{budget['workers']} workers limited together to their sum. "
        "Requests 100m a worker on both sides. "
        "wrk (one thread) on the host sends the load through each CoreCluster's Service "
        "(kube-proxy), keep-alive or with a new connection per request; "
        f"{data['rounds']} rounds of {data['seconds']} s per run, the setups taking turns "
        "(who goes first alternates), medians over rounds; *ratio* is pods over prefork "
        "within each round, then the median. `mix`: one request in "
        f"{data['shapes']['mix']['long_one_in']} burns 50 ms of CPU, the others 1 ms. "
        "*Throttled*: the share of CFS periods in which the pods hit their limit "
        "(`nr_throttled` / `nr_periods` of the pods' cgroups, read before and after each run).",
        "",
        "| shape | client | conns | pods rps | prefork rps | rps ratio | pods p50 / p99 / max ms "
        "| prefork p50 / p99 / max ms | p99 ratio | failed pods / prefork "
        "| throttled pods / prefork | goals |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in summary["cells"]:
        pods, prefork = c.get("pods", {}), c.get("prefork", {})
        goals = ("rps " if not c["rps_met"] else "") + ("p99" if not c["p99_met"] else "")
        lines.append(
            f"| `{c['shape']}` | {c['client']} | {c['connections']} | {_n(pods['rps'])} "
            f"| {_n(prefork['rps'])} | {_n(c['rps_ratio'], 2)} "
            f"| {_n(pods['p50_ms'], 1)} / {_n(pods['p99_ms'], 1)} / {_n(pods['max_ms'])} "
            f"| {_n(prefork['p50_ms'], 1)} / {_n(prefork['p99_ms'], 1)} / {_n(prefork['max_ms'])} "
            f"| {_n(c['p99_ratio'], 2)} | {pods['failed']} / {prefork['failed']} "
            f"| {100 * pods['throttled_share']:.0f} % / {100 * prefork['throttled_share']:.0f} % "
            f"| {'met' if not goals else 'missed: ' + goals.strip()} |"
        )
    cells = summary["cells"]
    met_rps = sum(c["rps_met"] for c in cells)
    met_p99 = sum(c["p99_met"] for c in cells)
    memory = data["memory_per_worker_mib"]
    lines += [
        "",
        f"Goals (pods at least {RPS_GOAL} times prefork's rps, p99 at most {P99_GOAL} times): "
        f"rps met in {met_rps} of {len(cells)} cells, p99 in {met_p99} of {len(cells)}.",
        "",
        "Where pods mode can miss, and what to compare in the table: kube-proxy picks a pod "
        "per connection, not per request, so a few keep-alive connections can fall unevenly "
        "on the pods, and a pod cannot borrow its sibling's idle CPU (its throttled share "
        "rises while prefork's stays lower); a prefork pod's workers share one limit, so "
        "while one worker is stuck in a long request of the uneven mix the other can use "
        "the whole of it, where a one-worker pod waits out its own quota. Both fade as "
        "connections outnumber workers. The README's *One-CPU pods or prefork* turns a run "
        "into advice.",
        "",
        "Memory per worker (the pods' anonymous memory over the workers, MiB): "
        f"idle pods {memory['idle']['pods']}, prefork {memory['idle']['prefork']}; "
        f"after the load pods {memory['after_load']['pods']}, "
        f"prefork {memory['after_load']['prefork']}.",
        "",
        f"![throughput and p99 against concurrency](compare{suffix}.png)",
        f"![CFS throttling](compare{suffix}-throttling.png)",
        "",
        "## Adding a worker, losing one",
        "",
        "Under a light load through the Service (6 clients, `/io?ms=20`, a new connection "
        "per request). *Seconds*: until the new worker serves: for a pod, its address listed "
        "ready in the Service's EndpointSlices; for a forked worker, the new process answering "
        "on its pod's address. Failed requests: from the event until 3 s after that.",
        "",
        "| setup | event | seconds | failed / requests |",
        "| --- | --- | --- | --- |",
    ]
    for event in data["events"]:
        lines.append(
            f"| {event['setup']} | {event['event']} | {event['seconds']} "
            f"| {event['failed']} / {event['requests']} |"
        )
    lines += ["", f"![recovery timelines](compare{suffix}-events.png)", ""]
    if summary["host"]:
        host = data["host"]
        lines += [
            "## Without an orchestrator, on the host",
            "",
            "wrk -c64 keep-alive on 127.0.0.1. *one CPU*: every server pinned to CPU 0 "
            "(taskset), wrk on CPU 1; *two CPUs*: servers and wrk (two threads) share both. "
            "`--mode auto` chose "
            + ", ".join(f"{n} worker(s) on {case}" for case, n in host["auto_workers"].items())
            + ".",
            "",
            "| machine | server | `/` rps | `/` p99 ms | `/cpu?ms=5` rps | `/cpu?ms=5` p99 ms |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for case, servers in summary["host"].items():
            for server, shapes in servers.items():
                nan = {"rps": math.nan, "p99_ms": math.nan}
                trivial, cpu = shapes.get("/", nan), shapes.get("/cpu?ms=5", nan)
                lines.append(
                    f"| {case} | {server} | {_n(trivial['rps'])} | {_n(trivial['p99_ms'], 1)} "
                    f"| {_n(cpu['rps'])} | {_n(cpu['p99_ms'], 1)} |"
                )
        lines.append("")
    lines += [
        "Busiest processes before the run (`ps -eo pcpu,pid,comm --sort=-pcpu`):",
        "",
        "```",
        *before["busiest_processes"],
        "```",
        "",
    ]
    return "\n".join(lines)


def plots(data: dict[str, Any], summary: dict[str, Any], out: Path, suffix: str) -> None:
    import matplotlib  # noqa: PLC0415 - only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    colors = {"pods": "#1f77b4", "prefork": "#d62728"}
    styles = {"keep-alive": "-", "new connection": "--"}
    shapes = list(data["shapes"])
    fig, axes = plt.subplots(len(shapes), 2, figsize=(12, 3.2 * len(shapes)), squeeze=False)
    for row, shape in enumerate(shapes):
        for col, key in enumerate(("rps", "p99_ms")):
            axis = axes[row][col]
            for setup, color in colors.items():
                for client, style in styles.items():
                    points = sorted(
                        (c["connections"], c[setup][key])
                        for c in summary["cells"]
                        if c["shape"] == shape and c["client"] == client and setup in c
                    )
                    axis.plot(
                        [x for x, _ in points],
                        [y for _, y in points],
                        style,
                        marker="o",
                        color=color,
                        label=f"{setup}, {client}",
                    )
            axis.set_xscale("log", base=2)
            axis.set_title(f"{shape}: {'requests/s' if key == 'rps' else 'p99 latency (ms)'}")
            axis.set_xlabel("connections")
            if row == 0 and col == 0:
                axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"compare{suffix}.png", dpi=80)
    plt.close(fig)

    fig, axis = plt.subplots(figsize=(12, 4))
    labels = [f"{c['shape']}\n{c['client']}\nc{c['connections']}" for c in summary["cells"]]
    xs = range(len(labels))
    for offset, setup in ((-0.2, "pods"), (0.2, "prefork")):
        axis.bar(
            [x + offset for x in xs],
            [100 * c[setup]["throttled_share"] for c in summary["cells"]],
            width=0.4,
            color=colors[setup],
            label=setup,
        )
    axis.set_xticks(list(xs), labels, fontsize=6)
    axis.set_ylabel("CFS periods throttled (%)")
    axis.legend()
    fig.tight_layout()
    fig.savefig(out / f"compare{suffix}-throttling.png", dpi=80)
    plt.close(fig)

    event_names = sorted({e["event"].split(" (")[0] for e in data["events"]})
    fig, axes = plt.subplots(
        2, max(1, len(event_names)), figsize=(12, 6), squeeze=False, sharey=True
    )
    for event in data["events"]:
        row = 0 if event["setup"] == "pods" else 1
        axis = axes[row][event_names.index(event["event"].split(" (")[0])]
        t = [x for x, _, _ in event["timeline"]]
        axis.plot(
            t, [4 * ok for _, ok, _ in event["timeline"]], color="#2ca02c", label="answered/s"
        )
        axis.plot(
            t, [4 * bad for _, _, bad in event["timeline"]], color="#d62728", label="failed/s"
        )
        axis.axvline(0, color="#999999", linewidth=0.8)
        axis.axvline(event["seconds"], color="#999999", linestyle=":", linewidth=0.8)
        axis.set_title(f"{event['setup']}: {event['event']}", fontsize=9)
        axis.set_xlabel("seconds since the event")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"compare{suffix}-events.png", dpi=80)
    plt.close(fig)
