"""Instructions per request, counted by valgrind's callgrind: the noise-free side of the benchmark.

On a shared 2-CPU VM a server's CPU time per request moves by ±15 % from one
minute to the next, which hides differences of a few per cent. Counting the
instructions a server executes for a fixed number of requests does not move:
each server runs under callgrind with instrumentation off while it starts,
one keep-alive client warms it up, instrumentation is switched on for every
process of the server, the client sends REQUESTS sequential `/` requests
(one request per event-loop turn, so no batching differs between servers),
and the counts of all the server's processes are summed. Only the Python
servers are measured: Node's JIT makes its count under valgrind meaningless.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import Server, answers, free_port, servers, stop, tree

log = logging.getLogger("bench.instructions")

REQUESTS = 2000
WARM_UP = 300


def send(port: int, count: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(count):
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"GET / answered {response.status}")
    finally:
        conn.close()


def control(pids: list[int], *args: str) -> None:
    for pid in pids:
        subprocess.run(
            ["callgrind_control", *args, str(pid)], capture_output=True, check=False, timeout=60
        )


def count(server: Server, port: int, folder: Path) -> float:
    """Instructions per `/` request of one server, all its processes together."""
    name = server.name
    out = folder / f"{name.replace(' ', '_')}.%p"
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--trace-children=yes",
            f"--callgrind-out-file={out}",
            *server.command,
        ],
        env={**os.environ, **server.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start under valgrind")
            time.sleep(0.5)
        send(port, WARM_UP)
        pids = tree(proc.pid)
        control(pids, "-i", "on")
        send(port, REQUESTS)
        control(pids, "-i", "off")
        control(pids, "-d")
    finally:
        stop(proc, timeout=60)
    total = 0
    for dump in folder.glob(f"{name.replace(' ', '_')}.*"):
        totals = [
            int(line.split()[1])
            for line in dump.read_text(errors="replace").splitlines()
            if line.startswith("totals:")
        ]
        total += max(totals, default=0)
    return total / REQUESTS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="servers take turns this many times: the count of the same code moves by a few "
        "thousand between processes (CPython's method cache), so compare ranges",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    counts: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="callgrind-") as folder:
        for round_number in range(args.rounds):
            port = free_port()
            # The benchmark's own one-worker Python servers, with the same commands.
            for server in servers(port):
                if server.workers == 1 and not server.name.startswith("node"):
                    log.info(
                        "callgrind, round %d/%d: %s", round_number + 1, args.rounds, server.name
                    )
                    run = Path(folder) / str(round_number)
                    run.mkdir(exist_ok=True)
                    counts.setdefault(server.name, []).append(count(server, port, run))
    anchor = statistics.median(counts["gunicorn -w 1"])
    lines = [
        "# Instructions per request",
        "",
        f"`bench/worker/instructions.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"each server under valgrind's callgrind, {REQUESTS} sequential `/` requests on one "
        f"keep-alive connection after {WARM_UP} to warm up; user-space instructions of all the "
        f"server's processes over the requests; {args.rounds} round(s), the servers taking "
        f"turns. Python {sys.version.split()[0]}.",
        "",
        "| server | instructions per request (median) | per round | relative to gunicorn -w 1 |",
        "| --- | --- | --- | --- |",
        *(
            f"| {name} | {statistics.median(values):,.0f} | "
            f"{', '.join(f'{value:,.0f}' for value in values)} | "
            f"{statistics.median(values) / anchor:.2f} |"
            for name, values in counts.items()
        ),
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "instructions.md").write_text("\n".join(lines))
    log.info("wrote %s", args.out / "instructions.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
