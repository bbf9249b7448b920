"""The two cases without an orchestrator that the folklore names, on the host:
a one-CPU machine (the servers pinned to CPU 0, wrk on CPU 1), where
``--mode auto`` must choose one process, and the whole two-CPU machine, where
prefork uses every core (servers and wrk share both CPUs, as in
``make bench-worker``). corescale (auto, single, prefork 2) against
gunicorn's uvloop workers and Node's cluster module, keep-alive clients.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from wrk import wrk

# bench/worker is on sys.path (compare.py puts it there): bench-worker's servers.
from bench import Server, free_port, running, servers, tree

log = logging.getLogger(__name__)
CASES = {"one CPU": "0", "two CPUs": None}
"""The servers' CPUs (taskset), None for all of them."""
SERVERS = ("corescale auto", "corescale single", "corescale prefork 2", "gunicorn uvloop -w 2")
SHAPES = ("/", "/cpu?ms=5")
NODE = "node cluster 2"


class Placed(Server):
    """A server on the CPUs its case gives it, whatever its worker count."""

    @property
    def pinned(self) -> bool:
        return False


def _contenders(port: int, cpus: str | None) -> list[Server]:
    known = {s.name: s for s in servers(port)}
    auto = known["corescale single"]
    auto_command = [*auto.command[: auto.command.index("--mode")], "--mode", "auto"]
    # One worker is only what the start waits for: auto's count is what it chooses.
    chosen = [Server("corescale auto", 1, auto_command, auto.env)]
    prefix = ["taskset", "-c", cpus] if cpus else []
    return [
        Placed(s.name, s.workers, [*prefix, *s.command], s.env)
        for s in chosen + [known[n] for n in SERVERS[1:]] + [known[NODE]]
    ]


def measure(rounds: int, seconds: int, connections: int) -> dict[str, Any]:
    """Every case, server and shape; servers take turns within a round."""
    runs: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    chosen: dict[str, int] = {}
    for round_number in range(rounds):
        for case, cpus in CASES.items():
            port = free_port()
            contenders = _contenders(port, cpus)
            if round_number % 2:
                contenders.reverse()
            for server in contenders:
                log.info("host round %d/%d, %s: %s", round_number + 1, rounds, case, server.name)
                with running(server) as proc:
                    time.sleep(1.5)
                    if server.name == "corescale auto":
                        # Serving processes: the one process, or the workers without their master.
                        count = len(tree(proc.pid))
                        chosen[case] = count - 1 if count > 1 else 1
                    for shape in SHAPES:
                        outcome = wrk(
                            f"http://127.0.0.1:{port}",
                            shape,
                            connections,
                            seconds,
                            new_connections=False,
                            threads=1 if cpus else 2,
                            cpus="1" if cpus else None,
                        )
                        by_shape = runs.setdefault(case, {}).setdefault(server.name, {})
                        by_shape.setdefault(shape, []).append(outcome)
    return {"runs": runs, "auto_workers": chosen, "connections": connections}
