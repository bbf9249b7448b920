"""One-CPU pods against in-pod prefork on the same CPU budget, on the real
cluster: ``make bench-compare``.

Two CoreClusters of the same app run at once in one namespace: ``pods``
(``--workers`` one-worker pods of ``--cpu-per-worker`` each) and
``prefork`` (one pod of ``--workers`` forked workers limited to their sum).
wrk on the host sends each load shape through each Service, keep-alive and
with a new connection per request (kube-proxy balances connections, not
requests); the setups take turns within every round, swapping who goes
first, so that a ratio is taken between runs a few seconds apart. Each run
also reads the pods' CFS throttling counters before and after. Then worker
events under a light load (adding a worker, deleting a pod, killing a
worker), and the two host cases of host.py.

Results: bench/results/compare.{json,md} and compare*.png. A measurement,
not a test: nothing fails on a slow figure. ``--quick`` is the self-check.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# The project root for tests.*, bench/worker for bench-worker's helpers (host.py).
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "worker")]
import events  # noqa: E402 - bench/compare is the script's own folder
import host  # noqa: E402
import report  # noqa: E402
from cluster import (  # noqa: E402
    SETUPS,
    Budget,
    deploy,
    kubernetes_version,
    memory_mib,
    pods,
    ready_endpoints,
    throttling,
)
from wrk import wrk  # noqa: E402

from bench import machine as host_machine  # noqa: E402
from tests.e2e.operator_helpers import OperatorProcess, service_url  # noqa: E402
from tests.kube import kubectl, wait_for  # noqa: E402

log = logging.getLogger("bench.compare")
RESULTS = ROOT / "bench" / "results"
SHAPES: dict[str, tuple[str, int | None]] = {
    "/": ("/", None),
    "/cpu?ms=5": ("/cpu?ms=5", None),
    "/io?ms=50": ("/io?ms=50", None),
    "mix": ("/", 20),
}
"""Shape name -> (path, one long request in N): ``mix`` is wrk.lua's uneven mix."""
CLIENTS = {"keep-alive": False, "new connection": True}


def _uids(namespace: str, setup: str) -> list[str]:
    return [p["metadata"]["uid"] for p in pods(namespace, setup)]


def _serving(namespace: str, setup: str, budget: Budget) -> str:
    """Wait until every pod of ``setup`` is listed and its Service answers; its URL."""
    pods_wanted = budget.workers if setup == "pods" else 1
    wait_for(
        f"{setup} serving",
        lambda: len(ready_endpoints(namespace, setup)) == pods_wanted,
        timeout=300,
    )
    url = service_url(namespace, setup, path="")
    # kube-proxy's rules follow the endpoints a moment later.
    wait_for(
        f"{setup} answering",
        lambda: wrk(url, "/", 1, 1, new_connections=True)["requests"] > 0,
        timeout=60,
    )
    return url


def sweep(
    namespace: str, urls: dict[str, str], rounds: int, seconds: int, concurrency: list[int]
) -> list[dict[str, Any]]:
    """Every shape, concurrency and client against both setups, in turns; one row per run."""
    rows: list[dict[str, Any]] = []
    uids = {setup: _uids(namespace, setup) for setup in SETUPS}
    for round_number in range(rounds):
        order = SETUPS if round_number % 2 == 0 else SETUPS[::-1]
        for shape, (path, mix) in SHAPES.items():
            for connections in concurrency:
                for client, new in CLIENTS.items():
                    for setup in order:
                        before = throttling(uids[setup])
                        outcome = wrk(
                            urls[setup], path, connections, seconds, new_connections=new, mix=mix
                        )
                        after = throttling(uids[setup])
                        rows.append(
                            {
                                "round": round_number,
                                "setup": setup,
                                "shape": shape,
                                "connections": connections,
                                "client": client,
                                **outcome,
                                **{f"{k}_delta": after[k] - before[k] for k in after},
                            }
                        )
                log.info(
                    "round %d/%d: %s, %d connections", round_number + 1, rounds, shape, connections
                )
    return rows


def machine() -> dict[str, Any]:
    """bench-worker's description of the host, with what a run on the cluster adds."""
    return host_machine() | {
        "arch": platform.machine(),
        "kubernetes": kubernetes_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _memory_per_worker(namespace: str, budget: Budget) -> dict[str, float]:
    return {
        setup: round(memory_mib(_uids(namespace, setup)) / budget.workers, 1) for setup in SETUPS
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the self-check: every column, fast")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=2, help="workers in each setup")
    parser.add_argument("--cpu-per-worker", default="500m", help="CPU limit of one worker")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--concurrency", default="4,16,64", help="wrk connections, comma-separated")
    parser.add_argument("--skip-host", action="store_true", help="only the cluster part")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    budget = Budget(args.workers, args.cpu_per_worker)
    rounds, seconds = (1, 1) if args.quick else (args.rounds, args.seconds)
    concurrency = [8] if args.quick else [int(c) for c in args.concurrency.split(",")]
    before = machine()
    namespace = f"bench-compare-{secrets.token_hex(3)}"
    kubectl("create", "namespace", namespace)
    try:
        logs = args.out.parent / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        operator = OperatorProcess(namespace, logs)
        operator.start()
        try:
            deploy(namespace, budget)
            urls = {setup: _serving(namespace, setup, budget) for setup in SETUPS}
            memory = _memory_per_worker(namespace, budget)
            runs = sweep(namespace, urls, rounds, seconds, concurrency)
            memory_after = _memory_per_worker(namespace, budget)
            worker_events = [
                row
                for setup in SETUPS
                for row in events.measure(namespace, setup, urls[setup], budget.workers)
            ]
        finally:
            operator.stop()
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")
    on_host = None if args.skip_host else host.measure(rounds, seconds, 64)
    data = {
        "command": "make bench-compare" + (" (quick)" if args.quick else ""),
        "machine_before": before,
        "machine_after": machine(),
        "budget": {"workers": budget.workers, "cpu_per_worker": budget.cpu_per_worker},
        "specs": {setup: budget.spec(setup) for setup in SETUPS},
        "rounds": rounds,
        "seconds": seconds,
        "concurrency": concurrency,
        "shapes": {name: {"path": p, "long_one_in": m} for name, (p, m) in SHAPES.items()},
        "runs": runs,
        "memory_per_worker_mib": {"idle": memory, "after_load": memory_after},
        "events": worker_events,
        "host": on_host,
    }
    suffix = "-quick" if args.quick else ""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"compare{suffix}.json").write_text(json.dumps(data, indent=1))
    summary = report.summarize(data)
    (args.out / f"compare{suffix}.md").write_text(report.markdown(data, summary, suffix))
    report.plots(data, summary, args.out, suffix)
    log.info("wrote %s", args.out / f"compare{suffix}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
