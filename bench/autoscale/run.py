"""corescale's autoscaler against a HorizontalPodAutoscaler on CPU, side by
side on one cluster: ``make bench-autoscale``.

Two CoreClusters run at once in one namespace, with the same pods (20m CPU
request, one CPU limit): ``cs`` scaled by ``spec.autoscaling`` (one request
in flight per worker) and ``hpa`` scaled by an HPA on CPU (100 % of the
request, metrics-server every 15 s). One load generator on the host
sends both the same schedule through their Services, a new connection per
request (kube-proxy balances connections). The load is a number of users,
each sending one ``/io?ms=500`` (it waits, which corescale sees as a request
in flight) then one ``/cpu?ms=4`` (it burns CPU, which the HPA sees), again
and again: a closed loop, so the requests in flight are the users' number
however busy this two-CPU machine is, and a step from 4 to 8 users doubles
the load exactly. The schedule is a step that doubles the load, a ramp, a
drop, and a steady load whose direction changes are counted.

Then the operator's CPU is read from /proc while it gathers from 20 pods, and
again while the same 20 pods are not autoscaled.

Results: bench/results/autoscale.json, .md (table) and .png (load, workers
and p99 latency over time). A measurement, not a test: nothing fails on a
slow figure. ``--quick`` runs a short schedule for the self-check test.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import platform
import secrets
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.e2e.operator_helpers import OperatorProcess, get  # noqa: E402 - root on sys.path
from tests.kube import kubectl, wait_for  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SETUPS = ("cs", "hpa")
POD = {"cpuRequest": "20m", "memory": "96Mi", "drainSeconds": 1, "shutdownTimeoutSeconds": 5}
LIMITS = {"minReplicas": 2, "maxReplicas": 16}
log = logging.getLogger("bench.autoscale")


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    rate: float
    """Users at the start; ``end_rate`` at the end (a ramp)."""
    end_rate: float | None = None

    def rate_at(self, t: float) -> float:
        if self.end_rate is None:
            return self.rate
        return self.rate + (self.end_rate - self.rate) * min(1.0, t / self.seconds)


def schedule(quick: bool) -> list[Phase]:
    scale = 0.15 if quick else 1.0
    return [
        Phase("warm-up", 90 * scale, 4),
        Phase("step x2", 150 * scale, 8),
        Phase("ramp x2", 90 * scale, 8, 16),
        Phase("drop", 150 * scale, 4),
        Phase("steady", 300 * scale, 6),
    ]


@dataclass
class Record:
    """What the load generator and the observer saw, second by second."""

    latencies: dict[str, list[tuple[float, float, bool]]] = field(
        default_factory=lambda: {s: [] for s in SETUPS}
    )
    timeline: list[dict[str, Any]] = field(default_factory=list)
    phases: list[tuple[str, float]] = field(default_factory=list)


async def _request(
    session: aiohttp.ClientSession, url: str, t0: float, into: list[tuple[float, float, bool]]
) -> None:
    """One request; kept as (start since t0, latency, answered 200)."""
    started = time.monotonic()
    try:
        async with session.get(url) as response:
            await response.read()
            ok = response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        ok = False
    into.append((started - t0, time.monotonic() - started, ok))


async def _user(
    session: aiohttp.ClientSession,
    url: str,
    t0: float,
    record: list[tuple[float, float, bool]],
    stop: asyncio.Event,
) -> None:
    """One user: a waiting request, then a CPU-bound one, until told to stop."""
    while not stop.is_set():
        for path in ("/io?ms=500", "/cpu?ms=4"):
            await _request(session, url + path, t0, record)


async def generate(urls: dict[str, str], phases: list[Phase], record: Record, t0: float) -> None:
    """Closed loop: as many users per setup as the schedule says, each second."""
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    users: dict[str, list[tuple[asyncio.Task[None], asyncio.Event]]] = {s: [] for s in SETUPS}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for phase in phases:
            start = time.monotonic()
            record.phases.append((phase.name, start - t0))
            while (now := time.monotonic()) - start < phase.seconds:
                wanted = round(phase.rate_at(now - start))
                for setup in SETUPS:
                    running = users[setup]
                    while len(running) < wanted:
                        stop = asyncio.Event()
                        task = asyncio.create_task(
                            _user(session, urls[setup], t0, record.latencies[setup], stop)
                        )
                        running.append((task, stop))
                    while len(running) > wanted:
                        running.pop()[1].set()
                await asyncio.sleep(1.0)
        for running in users.values():
            for _, stop in running:
                stop.set()
        await asyncio.gather(*(task for running in users.values() for task, _ in running))


def observe(namespace: str, record: Record, t0: float, stop: threading.Event) -> None:
    """Twice a second: each setup's decided and ready workers."""
    while not stop.wait(0.5):
        row: dict[str, Any] = {"t": round(time.monotonic() - t0, 2)}
        try:
            items = json.loads(kubectl("get", "-n", namespace, "coreclusters", "-o", "json"))
        except RuntimeError:
            continue
        for cc in items["items"]:
            name, status = cc["metadata"]["name"], cc.get("status") or {}
            desired = (status.get("autoscaling") or {}).get("desiredReplicas")
            row[f"{name}_desired"] = desired if desired is not None else cc["spec"]["replicas"]
            row[f"{name}_ready"] = status.get("readyReplicas", 0)
        record.timeline.append(row)


def _corecluster(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "corescale.io/v1alpha1",
        "kind": "CoreCluster",
        "metadata": {"name": name},
        "spec": {**POD, **spec},
    }
    return yaml.safe_dump(body)


def deploy(namespace: str) -> dict[str, str]:
    """Both CoreClusters and the HPA; the URL of each Service."""
    autoscaling = {**LIMITS, "targetInFlight": 1}
    kubectl("apply", "-n", namespace, "-f", "-", stdin=_corecluster("cs", autoscaling=autoscaling))
    kubectl("apply", "-n", namespace, "-f", "-", stdin=_corecluster("hpa", replicas=2))
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "hpa"},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "corescale.io/v1alpha1",
                "kind": "CoreCluster",
                "name": "hpa",
            },
            **LIMITS,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 100},
                    },
                }
            ],
        },
    }
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(hpa))
    urls = {}
    for name in SETUPS:
        wait_for(f"{name} ready", lambda n=name: _ready_workers(namespace, n) >= 2, timeout=300)  # type: ignore[misc]
        ip = get(namespace, "service", name)["spec"]["clusterIP"]
        urls[name] = f"http://{ip}"
    return urls


def _ready_workers(namespace: str, name: str) -> int:
    status = get(namespace, "corecluster", name).get("status") or {}
    return int(status.get("readyReplicas", 0))


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else float("nan")


def analyse(record: Record, phases: list[Phase]) -> dict[str, Any]:
    """Per setup: decision and capacity delays after the step, p99 while scaling,
    direction changes under the steady load, bounds."""
    starts = dict(record.phases)
    step = starts["step x2"]
    steady = starts["steady"]
    end = steady + phases[-1].seconds
    out: dict[str, Any] = {}
    for setup in SETUPS:
        rows = [r for r in record.timeline if f"{setup}_desired" in r]
        before = next((r[f"{setup}_desired"] for r in reversed(rows) if r["t"] <= step), None)
        decided = next((r for r in rows if r["t"] > step and r[f"{setup}_desired"] != before), None)
        serving = None
        if decided is not None:
            target = decided[f"{setup}_desired"]
            serving = next(
                (r for r in rows if r["t"] >= decided["t"] and r[f"{setup}_ready"] >= target), None
            )
        steady_counts = [r[f"{setup}_desired"] for r in rows if steady + 30 <= r["t"] <= end]
        moves = [b - a for a, b in itertools.pairwise(steady_counts) if b != a]
        changes = sum(1 for a, b in itertools.pairwise(moves) if (a > 0) != (b > 0))
        counts = [r[f"{setup}_desired"] for r in rows]
        window = [lat for t, lat, _ in record.latencies[setup] if step <= t < step + 60]
        requests = record.latencies[setup]
        out[setup] = {
            "decision_after_step_s": round(decided["t"] - step, 1) if decided else None,
            "capacity_serving_after_step_s": round(serving["t"] - step, 1) if serving else None,
            "workers_before_step": before,
            "workers_decided": decided[f"{setup}_desired"] if decided else None,
            "p99_first_60s_after_step_ms": round(1000 * _p99(window), 1),
            "p99_all_ms": round(1000 * _p99([lat for _, lat, _ in requests]), 1),
            "failed": sum(1 for *_, ok in requests if not ok),
            "requests": len(requests),
            "direction_changes_steady": changes,
            "min_workers": min(counts) if counts else None,
            "max_workers": max(counts) if counts else None,
        }
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gathering_cost(namespace: str, pid: int, seconds: float, pods: int) -> dict[str, float]:
    """The operator's CPU with ``pods`` autoscaled pods, then with the same not autoscaled."""
    kubectl("delete", "-n", namespace, "hpa,coreclusters", "--all", "--wait=true")
    fixed = {"minReplicas": pods, "maxReplicas": pods, "targetInFlight": 1}
    kubectl("apply", "-n", namespace, "-f", "-", stdin=_corecluster("many", autoscaling=fixed))
    wait_for(
        f"{pods} ready workers",
        lambda: _ready_workers(namespace, "many") >= pods,
        timeout=600,
        interval=2,
    )
    time.sleep(5)

    def share() -> float:
        before, t = cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - t)

    gathering = share()
    kubectl(
        "patch",
        "-n",
        namespace,
        "corecluster/many",
        "--type=json",
        "-p",
        json.dumps(
            [
                {"op": "remove", "path": "/spec/autoscaling"},
                {"op": "replace", "path": "/spec/replicas", "value": pods},
            ]
        ),
    )
    time.sleep(5)
    idle = share()
    return {
        "pods": pods,
        "seconds": seconds,
        "cpu_percent_gathering": round(gathering, 2),
        "cpu_percent_not_gathering": round(idle, 2),
        "cpu_percent_for_gathering": round(gathering - idle, 2),
    }


def report(data: dict[str, Any]) -> str:
    rows = [
        ("decision after the step (s)", "decision_after_step_s"),
        ("new capacity serving after the step (s)", "capacity_serving_after_step_s"),
        ("workers before the step -> decided", None),
        ("p99 in the 60 s after the step (ms)", "p99_first_60s_after_step_ms"),
        ("p99 over the whole run (ms)", "p99_all_ms"),
        ("failed requests / requests", None),
        ("direction changes under the steady load", "direction_changes_steady"),
        ("fewest / most workers (limits 2 / 16)", None),
    ]
    s = data["setups"]
    lines = [
        "# Autoscaling: corescale's autoscaler against an HPA on CPU",
        "",
        f"Measured {data['when']} on {data['machine']} with `{data['command']}`; "
        f"load average before {data['load_before']}, after {data['load_after']}. "
        "Both setups ran at once on one node, with the same pods and the same load: "
        "users each sending `/io?ms=500` then `/cpu?ms=4` in a loop (closed loop), "
        "a new connection per request, through each Service.",
        "",
        "Schedule: "
        + ", ".join(
            f"{p['name']} {p['seconds']:g} s with {p['rate']:g}"
            + (f"->{p['end_rate']:g}" if p["end_rate"] else "")
            + " users"
            for p in data["schedule"]
        ),
        "",
        "| | corescale (`spec.autoscaling`, 1 in flight per worker) | HPA (CPU 100 % of 20m) |",
        "| --- | --- | --- |",
    ]
    for label, key in rows:
        if key:
            cells = [str(s[x][key]) for x in SETUPS]
        elif label.startswith("workers"):
            cells = [f"{s[x]['workers_before_step']} -> {s[x]['workers_decided']}" for x in SETUPS]
        elif label.startswith("failed"):
            cells = [f"{s[x]['failed']} / {s[x]['requests']}" for x in SETUPS]
        else:
            cells = [f"{s[x]['min_workers']} / {s[x]['max_workers']}" for x in SETUPS]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    cost = data["gathering"]
    lines += [
        "",
        f"The operator's CPU with {cost['pods']} autoscaled pods (one scrape each per second): "
        f"{cost['cpu_percent_gathering']} % of one CPU; the same pods without autoscaling: "
        f"{cost['cpu_percent_not_gathering']} %; gathering itself: "
        f"{cost['cpu_percent_for_gathering']} % (over {cost['seconds']:g} s each).",
        "",
        "![load, workers and p99 over time](autoscale.png)",
        "",
    ]
    return "\n".join(lines)


def plot(data: dict[str, Any], target: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (load_axis, workers_axis, p99_axis) = plt.subplots(3, 1, figsize=(12, 10), sharex=True)
    timeline = data["timeline"]
    t = [r["t"] for r in timeline]
    per_second = data["rate"]
    load_axis.plot([x for x, _ in per_second], [y for _, y in per_second], color="black")
    load_axis.set_ylabel("users (each: io 500 ms, cpu 4 ms, repeat)")
    for setup, color in zip(SETUPS, ("#1f77b4", "#d62728"), strict=True):
        label = "corescale" if setup == "cs" else "HPA on CPU"
        workers_axis.plot(
            t, [r.get(f"{setup}_desired") for r in timeline], color=color, label=f"{label}: decided"
        )
        workers_axis.plot(
            t,
            [r.get(f"{setup}_ready") for r in timeline],
            color=color,
            linestyle=":",
            label=f"{label}: ready",
        )
        p99 = data["p99_per_5s"][setup]
        p99_axis.plot([x for x, _ in p99], [y for _, y in p99], color=color, label=label)
    workers_axis.set_ylabel("workers")
    workers_axis.legend(loc="upper left")
    p99_axis.set_ylabel("p99 latency per 5 s (ms)")
    p99_axis.set_yscale("log")
    p99_axis.set_xlabel("seconds")
    p99_axis.legend(loc="upper left")
    for axis in (load_axis, workers_axis, p99_axis):
        for name, start in data["phases"]:
            axis.axvline(start, color="#999999", linewidth=0.8)
            if axis is load_axis:
                axis.text(start, axis.get_ylim()[1], f" {name}", va="top", fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=80)


def _series(record: Record, phases: list[Phase]) -> tuple[list[Any], dict[str, list[Any]]]:
    rate = []
    for name, start in record.phases:
        phase = next(p for p in phases if p.name == name)
        rate += [(round(start + s, 1), phase.rate_at(s)) for s in range(int(phase.seconds))]
    p99: dict[str, list[Any]] = {}
    for setup in SETUPS:
        buckets: dict[int, list[float]] = {}
        for started, latency, _ in record.latencies[setup]:
            buckets.setdefault(int(started // 5), []).append(latency)
        p99[setup] = [(5 * b, round(1000 * _p99(v), 1)) for b, v in sorted(buckets.items())]
    return rate, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short schedule (self-check)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--gather-seconds", type=float, default=60)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    namespace = f"bench-autoscale-{secrets.token_hex(3)}"
    phases = schedule(args.quick)
    kubectl("create", "namespace", namespace)
    load_before = os.getloadavg()
    try:
        logs = args.out.parent / "logs"
        logs.mkdir(exist_ok=True)
        process = OperatorProcess(namespace, logs)
        process.start()
        try:
            assert process.proc is not None
            urls = deploy(namespace)
            record = Record()
            t0 = time.monotonic()
            stop = threading.Event()
            watcher = threading.Thread(
                target=observe, args=(namespace, record, t0, stop), daemon=True
            )
            watcher.start()
            asyncio.run(generate(urls, phases, record, t0))
            stop.set()
            watcher.join(timeout=10)
            setups = analyse(record, phases)
            gathering = gathering_cost(
                namespace,
                process.proc.pid,
                5 if args.quick else args.gather_seconds,
                4 if args.quick else 20,
            )
        finally:
            process.stop()
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")
    rate, p99 = _series(record, phases)
    data = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
        "command": "make bench-autoscale" + (" (quick)" if args.quick else ""),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "schedule": [
            {"name": p.name, "seconds": p.seconds, "rate": p.rate, "end_rate": p.end_rate}
            for p in phases
        ],
        "phases": record.phases,
        "setups": setups,
        "gathering": gathering,
        "timeline": record.timeline,
        "rate": rate,
        "p99_per_5s": p99,
    }
    suffix = "-quick" if args.quick else ""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"autoscale{suffix}.json").write_text(json.dumps(data, indent=1))
    (args.out / f"autoscale{suffix}.md").write_text(report(data))
    plot(data, args.out / f"autoscale{suffix}.png")
    log.info("wrote %s", args.out / f"autoscale{suffix}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
