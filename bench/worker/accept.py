"""The accept-strategy measurement behind corescale's prefork default (docs/worker.md).

For each strategy (balanced, shared, reuseport), a prefork master with two
workers gets:

* 64 connections from wrk on /pid, paced below saturation and flat out (see
  bench.SPREADS), once keep-alive and once with a new connection for every
  request: the share of requests per worker, and for keep-alive the open
  connections per worker (corescale_connections, scraped mid-run);
* 64 keep-alive connections flat out on /cpu?ms=1: requests per second and
  the latency tail (p50, p99) the strategy leaves;
* a new connection for every request to /pid, healthy and then with one
  worker stopped (SIGSTOP): the share of the healthy rate the pod keeps
  while a worker is stuck (issue 15);
* new connections for every request to /cpu?ms=2 (so that connections
  queue in the kernel) while SIGHUP replaces both workers twice:
  the requests that failed (a worker's own SO_REUSEPORT socket takes its
  queued connections with it when it closes; a shared socket keeps them).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import SPREADS, found, free_port, wrk

log = logging.getLogger("bench.accept")

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
STRATEGIES = ("balanced", "shared", "reuseport")


def connections(port: int) -> list[int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
        text = page.read().decode()
    return sorted(
        int(float(value))
        for value in re.findall(r'^corescale_connections\{worker="\d+"\} (\S+)$', text, re.M)
        if float(value) > 0
    )


def hup_under_load(pid: int, port: int, seconds: int) -> dict[str, Any]:
    def signal_later() -> None:
        for _ in range(2):
            time.sleep(seconds / 3)
            os.kill(pid, signal.SIGHUP)

    thread = threading.Thread(target=signal_later)
    thread.start()
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c64",
            f"-d{seconds}s",
            "-H",
            "Connection: close",
            f"http://127.0.0.1:{port}/cpu?ms=2",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    thread.join()
    total = int(found(r"(\d+) requests in", out))
    errors = 0
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(g) for g in match.groups())
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    return {"requests": total, "failed": errors}


def children(pid: int) -> list[int]:
    """The worker pids of a master, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def stuck_worker(master: int, port: int, seconds: int) -> dict[str, float]:
    """New-connection requests per second on /pid, healthy and with one worker SIGSTOPped."""
    url = f"http://127.0.0.1:{port}/pid"
    healthy = wrk(url, seconds, new_connections=True, timeout="1s")
    victim = min(children(master))
    os.kill(victim, signal.SIGSTOP)
    try:
        stuck = wrk(url, seconds, new_connections=True, timeout="1s")
    finally:
        os.kill(victim, signal.SIGCONT)
    return {"healthy_rps": healthy["rps"], "stuck_rps": stuck["rps"]}


def measure(strategy: str, seconds: int) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "corescale-worker"),
            "--mode",
            "prefork",
            "--workers",
            "2",
            "--accept",
            strategy,
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        env={**os.environ, "CORESCALE_DRAIN_DELAY": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)
        mid: list[int] = []
        timer = threading.Timer(seconds / 2, lambda: mid.extend(connections(port)))
        timer.start()
        spreads: dict[str, list[int]] = {}
        for spread, pause in SPREADS.items():
            share = wrk(f"http://127.0.0.1:{port}/pid", seconds, HERE / "pid_share.lua", (pause,))
            spreads[spread] = sorted(share["pids"].values())
        timer.join()
        for spread, pause in SPREADS.items():
            share = wrk(
                f"http://127.0.0.1:{port}/pid",
                seconds,
                HERE / "pid_share.lua",
                (pause,),
                new_connections=True,
            )
            spreads[f"{spread}, new connections"] = sorted(share["pids"].values())
        cpu = wrk(f"http://127.0.0.1:{port}/cpu?ms=1", seconds)
        stuck = stuck_worker(proc.pid, port, seconds)
        hup = hup_under_load(proc.pid, port, seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return {
        "requests_per_worker": spreads,
        "connections_per_worker": mid,
        "cpu": {key: cpu[key] for key in ("rps", "p50_ms", "p99_ms", "errors")},
        "stuck": stuck,
        "sighup": hup,
    }


def _ratio(counts: list[int]) -> float | None:
    """Busiest over quietest of two workers; None when one got nothing."""
    return counts[-1] / counts[0] if len(counts) == 2 and counts[0] else None


def _shown(ratio: float | None) -> str:
    return "inf" if ratio is None else f"{ratio:.2f}"


SPREAD_KEYS = ("paced", "saturated", "paced, new connections", "saturated, new connections")


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of one strategy's figures (worst round for the spreads)."""
    row: dict[str, Any] = {}
    for key in SPREAD_KEYS:
        ratios = [_ratio(run["requests_per_worker"][key]) for run in runs]
        finite = [r for r in ratios if r is not None]
        row[key] = {
            "median": statistics.median(finite) if len(finite) == len(ratios) else None,
            "worst": max(finite) if len(finite) == len(ratios) else None,
        }
    for key in ("rps", "p50_ms", "p99_ms"):
        row[f"cpu_{key}"] = statistics.median(float(run["cpu"][key]) for run in runs)
    row["stuck_kept"] = statistics.median(
        run["stuck"]["stuck_rps"] / run["stuck"]["healthy_rps"] for run in runs
    )
    row["sighup_failed"] = sum(int(run["sighup"]["failed"]) for run in runs)
    row["sighup_requests"] = sum(int(run["sighup"]["requests"]) for run in runs)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE.parent / "results")
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_DURATION", "6")))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    def uptime() -> str:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()

    before = uptime()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in STRATEGIES}
    for round_number in range(args.rounds):
        for strategy in STRATEGIES:
            log.info("round %d: %s", round_number + 1, strategy)
            results[strategy].append(measure(strategy, args.seconds))
    after = uptime()
    summaries = {strategy: summary(runs) for strategy, runs in results.items()}
    lines = [
        "# Accept strategy",
        "",
        f"`bench/worker/accept.py` on {started}, {args.rounds} rounds of {args.seconds} s, "
        "corescale prefork with 2 workers, wrk -t2 -c64 on the same two CPUs; "
        f"load before: `{before}`; after: `{after}`.",
        "",
        "Medians over rounds (worst round in brackets). Busiest/quietest: requests on `/pid` "
        "of the busiest worker over the quietest; *paced*: one request per connection every "
        "10 ms, *saturated*: flat out; *new conns*: `Connection: close` on every request. "
        "*Stuck*: new-connection requests per second with one worker SIGSTOPped, over the "
        "healthy rate just before.",
        "",
        "| strategy | keep-alive paced | keep-alive saturated | new conns paced | "
        "new conns saturated | `/cpu?ms=1` rps | p50 ms | p99 ms | one worker stopped: "
        "rate kept | failed / total, 2x SIGHUP |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for strategy, row in summaries.items():
        spreads = " | ".join(
            f"{_shown(row[key]['median'])} ({_shown(row[key]['worst'])})" for key in SPREAD_KEYS
        )
        lines.append(
            f"| {strategy} | {spreads} | {row['cpu_rps']:,.0f} | {row['cpu_p50_ms']:.1f} | "
            f"{row['cpu_p99_ms']:.1f} | {100 * row['stuck_kept']:.0f} % | "
            f"{row['sighup_failed']} / {row['sighup_requests']} |"
        )
    lines += [
        "",
        "p99 on `/cpu?ms=1` over `shared`'s, round by round (same round, so the machine's "
        "mood cancels out): "
        + "; ".join(
            f"{strategy}: "
            + ", ".join(
                f"{float(mine['cpu']['p99_ms']) / float(theirs['cpu']['p99_ms']):.2f}"
                for mine, theirs in zip(runs, results["shared"], strict=True)
            )
            for strategy, runs in results.items()
            if strategy != "shared"
        ),
        "",
        "Every round:",
        "",
        "| strategy | open connections (64 keep-alive) | requests per worker: keep-alive paced, "
        "saturated; new conns paced, saturated | `/cpu?ms=1` rps, p50, p99 ms | "
        "new conns/s healthy -> one stopped | failed / total, 2x SIGHUP |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for strategy, runs in results.items():
        for run in runs:
            cpu: dict[str, float] = run["cpu"]
            stuck: dict[str, float] = run["stuck"]
            hup: dict[str, int] = run["sighup"]
            shares = "; ".join(str(run["requests_per_worker"][key]) for key in SPREAD_KEYS)
            lines.append(
                f"| {strategy} | {run['connections_per_worker']} | {shares} | "
                f"{cpu['rps']:,.0f}, {cpu['p50_ms']:.1f}, {cpu['p99_ms']:.1f} | "
                f"{stuck['healthy_rps']:,.0f} -> {stuck['stuck_rps']:,.0f} | "
                f"{hup['failed']} / {hup['requests']} |"
            )
    lines.append("")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accept.json").write_text(
        json.dumps(
            {"before": before, "after": after, "summary": summaries, "runs": results}, indent=1
        )
    )
    (args.out / "accept.md").write_text("\n".join(lines))
    log.info("wrote %s", args.out / "accept.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
