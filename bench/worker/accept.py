"""The accept-strategy measurement behind corescale's prefork default (docs/worker.md).

For each strategy (balanced, shared, reuseport), a prefork master with two
workers gets:

* 64 keep-alive connections from wrk on /pid, paced below saturation and
  flat out (see bench.SPREADS): the share of requests and of open
  connections (corescale_connections, scraped mid-run) per worker;
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
        hup = hup_under_load(proc.pid, port, seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return {"requests_per_worker": spreads, "connections_per_worker": mid, "sighup": hup}


def _ratio(counts: list[int]) -> str:
    return f"{counts[-1] / counts[0]:.2f}" if len(counts) == 2 and counts[0] else "inf"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE.parent / "results")
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_DURATION", "6")))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in STRATEGIES}
    for round_number in range(args.rounds):
        for strategy in STRATEGIES:
            log.info("round %d: %s", round_number + 1, strategy)
            results[strategy].append(measure(strategy, args.seconds))
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    lines = [
        "# Accept strategy",
        "",
        f"`bench/worker/accept.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{args.rounds} rounds of {args.seconds} s, corescale prefork with 2 workers; "
        f"load: `{uptime.strip()}`.",
        "",
        "| strategy | open connections per worker (64 keep-alive) | requests per worker, "
        "paced | busiest/quietest, paced | requests per worker, saturated | "
        "busiest/quietest, saturated | failed / total, 2x SIGHUP, new conns on /cpu?ms=2 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for strategy, runs in results.items():
        for run in runs:
            hup: dict[str, int] = run["sighup"]
            spreads: dict[str, list[int]] = run["requests_per_worker"]
            lines.append(
                f"| {strategy} | {run['connections_per_worker']} | {spreads['paced']} | "
                f"{_ratio(spreads['paced'])} | {spreads['saturated']} | "
                f"{_ratio(spreads['saturated'])} | {hup['failed']} / {hup['requests']} |"
            )
    lines.append("")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accept.json").write_text(json.dumps(results, indent=1))
    (args.out / "accept.md").write_text("\n".join(lines))
    log.info("wrote %s", args.out / "accept.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
