"""The worker benchmark: wrk against each server on 127.0.0.1, side by side in one run.

Servers take turns within each round (and rounds repeat), so that the noise
of a shared machine falls on all of them alike; the table reports the
median over rounds. A one-worker server runs on CPU 0 and wrk on CPU 1, as
a one-CPU pod beside its clients; otherwise wrk's threads and the server
take turns on the same CPU and the ranking follows the scheduler more than
the server. Two-worker servers need both CPUs and share them with wrk.
Beside requests per second, the server's own CPU time per request (user
and system, all its processes) says what each request costs it.

Every server serves the same demo app: corescale and gunicorn the factory
corescale.worker.app:create_app, Node a fixture with the same endpoints
(node_cluster.js).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger("bench.worker")

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
ENDPOINTS = ("/", "/cpu?ms=1")
CONNECTIONS = 64
THREADS = 2
SERVER_CPU, WRK_CPU = "0", "1"
APP = "corescale.worker.app:create_app"
# The spread over workers, measured on /pid twice: flat out (each worker's
# share then follows the CPU the scheduler gives it), and paced at one request
# per connection every 10 ms (6,400 requests/s in all, below saturation: the
# share then follows how the connections were spread over the workers).
SPREADS = {"saturated": "0", "paced": "10"}


@dataclass
class Server:
    """One contender: how to start it and how many serving processes it has."""

    name: str
    workers: int
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pinned(self) -> bool:
        """One worker: the server gets CPU 0 to itself and wrk CPU 1."""
        return self.workers == 1

    def argv(self) -> list[str]:
        return ["taskset", "-c", SERVER_CPU, *self.command] if self.pinned else self.command


def servers(port: int) -> list[Server]:
    bind = f"127.0.0.1:{port}"
    corescale = [str(VENV_BIN / "corescale-worker"), "--bind", bind, "--log-level", "warning"]
    quiet = {"CORESCALE_DRAIN_DELAY": "0"}

    def gunicorn(name: str, worker_class: str, workers: int) -> Server:
        command = [str(VENV_BIN / "gunicorn"), "-b", bind, "--log-level", "warning"]
        command += ["-k", f"aiohttp.{worker_class}", "-w", str(workers), f"{APP}()"]
        return Server(name, workers, command)

    return [
        Server("corescale single", 1, [*corescale, "--mode", "single"], quiet),
        gunicorn("gunicorn -w 1", "GunicornWebWorker", 1),
        gunicorn("gunicorn uvloop -w 1", "GunicornUVLoopWebWorker", 1),
        Server(
            "corescale prefork 2", 2, [*corescale, "--mode", "prefork", "--workers", "2"], quiet
        ),
        gunicorn("gunicorn -w 2", "GunicornWebWorker", 2),
        gunicorn("gunicorn uvloop -w 2", "GunicornUVLoopWebWorker", 2),
        Server(
            "node cluster 2",
            2,
            ["node", str(HERE / "node_cluster.js")],
            {"WORKERS": "2", "PORT": str(port), "HOST": "127.0.0.1"},
        ),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def tree(pid: int) -> list[int]:
    """pid and its descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (private) of one process, in MiB."""
    fields: dict[str, float] = {}
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        fields[name] = float(rest.split()[0]) / 1024
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
    }


@contextlib.contextmanager
def running(server: Server) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, **server.env}
    proc = subprocess.Popen(
        server.argv(),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    port = int(server.env.get("PORT", "0")) or int(
        server.command[
            server.command.index("--bind" if "--bind" in server.command else "-b") + 1
        ].rsplit(":", 1)[1]
    )
    try:
        deadline = time.monotonic() + 30
        while not answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{server.name} did not start: {proc.stderr.read().decode()}"
                    if proc.stderr
                    else server.name
                )
            time.sleep(0.1)
        # Every worker must be up before measuring, not only the first.
        deadline = time.monotonic() + 30
        while len(tree(proc.pid)) < server.workers + (1 if server.workers > 1 else 0):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        yield proc
    finally:
        stop(proc, timeout=15)


def stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM to a server's process group, SIGKILL if it is still there after `timeout` s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unknown latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of the given processes so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def found(pattern: str, text: str) -> str:
    """The first group of ``pattern`` in a tool's output, which must hold it."""
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"no {pattern!r} in:\n{text}")
    return match.group(1)


def wrk(
    url: str,
    seconds: int,
    script: Path | None = None,
    script_args: tuple[str, ...] = (),
    *,
    pinned: bool = False,
    new_connections: bool = False,
    timeout: str = "10s",
) -> dict[str, Any]:
    """One wrk run; `new_connections` sends `Connection: close`, so every request connects anew."""
    command = [
        *(["taskset", "-c", WRK_CPU] if pinned else []),
        "wrk",
        f"-t{1 if pinned else THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        timeout,
        *(["-H", "Connection: close"] if new_connections else []),
    ]
    if script is not None:
        command += ["-s", str(script)]
    tail = ["--", *script_args] if script_args else []
    out = subprocess.run(
        [*command, url, *tail], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    result: dict[str, Any] = {"raw": out}
    result["rps"] = float(found(r"Requests/sec:\s+([\d.]+)", out))
    result["requests"] = int(found(r"(\d+) requests in", out))
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.MULTILINE)
        result[f"p{pct}_ms"] = _ms(match.group(1)) if match else None
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(g) for g in match.groups())
    result["errors"] = errors
    result["pids"] = {pid: int(n) for pid, n in re.findall(r"^PID (\d+) (\d+)$", out, re.MULTILINE)}
    return result


def machine() -> dict[str, Any]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, timeout=20, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            return f"({exc})"

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "uptime": run("uptime"),
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "node": run("node", "--version"),
        "wrk": run("wrk", "-v").splitlines()[0] if run("wrk", "-v") else "",
        "busiest_processes": run("ps", "-eo", "pcpu,pid,comm", "--sort=-pcpu").splitlines()[:8],
    }


def measure(rounds: int, seconds: int) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    before = machine()
    for round_number in range(rounds):
        port = free_port()
        for server in servers(port):
            log.info("round %d/%d: %s", round_number + 1, rounds, server.name)
            entry = results.setdefault(server.name, {"workers": server.workers, "runs": {}})
            with running(server) as proc:
                time.sleep(1.0)
                if round_number == 0:
                    entry["memory"] = {str(pid): memory(pid) for pid in tree(proc.pid)}
                    entry["root_pid"] = proc.pid
                runs: dict[str, list[dict[str, Any]]] = entry["runs"]
                pids = tree(proc.pid)
                for endpoint in ENDPOINTS:
                    spent = cpu_seconds(pids)
                    outcome = wrk(
                        f"http://127.0.0.1:{port}{endpoint}", seconds, pinned=server.pinned
                    )
                    spent = cpu_seconds(pids) - spent
                    outcome["cpu_us_per_request"] = 1e6 * spent / max(1, int(outcome["requests"]))
                    runs.setdefault(endpoint, []).append(outcome)
                for spread, pause in SPREADS.items():
                    outcome = wrk(
                        f"http://127.0.0.1:{port}/pid",
                        seconds,
                        HERE / "pid_share.lua",
                        (pause,),
                        pinned=server.pinned,
                    )
                    runs.setdefault(spread, []).append(outcome)
    return {
        "machine_before": before,
        "machine_after": machine(),
        "rounds": rounds,
        "seconds": seconds,
        "connections": CONNECTIONS,
        "threads": THREADS,
        "results": results,
    }


class Goal(NamedTuple):
    """One goal of the issues: a contender's figure over an anchor's, measured in the same round."""

    issue: str
    contender: str
    anchor: str
    endpoint: str
    key: str
    """`rps` (higher is better: at least `bound`) or `p99_ms` (lower: at most `bound`)."""
    bound: float


GOALS = (
    Goal("17", "corescale prefork 2", "gunicorn uvloop -w 2", "/", "rps", 1.0),
    Goal("17", "corescale prefork 2", "gunicorn uvloop -w 2", "/cpu?ms=1", "p99_ms", 1.1),
    Goal("15", "corescale single", "gunicorn uvloop -w 1", "/", "rps", 1.0),
    Goal("15", "corescale single", "gunicorn -w 1", "/cpu?ms=1", "p99_ms", 1.1),
    Goal("earlier", "corescale single", "gunicorn -w 1", "/", "rps", 1.0),
    Goal("earlier", "corescale prefork 2", "gunicorn -w 2", "/", "rps", 1.0),
    Goal("earlier", "corescale prefork 2", "node cluster 2", "/", "rps", 1.0),
)


def goal_ratios(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-round ratios of each goal's contender over its anchor; whether the median meets it."""
    results: dict[str, dict[str, Any]] = data["results"]
    rows: list[dict[str, Any]] = []
    for goal in GOALS:
        if goal.contender not in results or goal.anchor not in results:
            continue
        mine = results[goal.contender]["runs"][goal.endpoint]
        theirs = results[goal.anchor]["runs"][goal.endpoint]
        ratios = [
            float(a[goal.key]) / float(b[goal.key])
            for a, b in zip(mine, theirs, strict=True)
            if a[goal.key] is not None and b[goal.key]
        ]
        median = statistics.median(ratios)
        rows.append(
            {
                **goal._asdict(),
                "median": median,
                "rounds": [round(r, 3) for r in ratios],
                "met": median >= goal.bound if goal.key == "rps" else median <= goal.bound,
            }
        )
    return rows


def spread_goals(summary: dict[str, dict[str, Any]], accept: Path) -> list[dict[str, Any]]:
    """The spread and stuck-worker goals, from this run's prefork rows and from accept.json."""
    rows: list[dict[str, Any]] = []
    prefork = summary.get("corescale prefork 2")
    if prefork is not None:
        for spread in ("paced", "saturated"):
            figures: dict[str, Any] = prefork[spread]
            rows.append(
                {
                    "goal": f"busiest/quietest ≤ 1.2, 64 keep-alive, {spread} (issue 17)",
                    "median": figures["ratio"],
                    "worst": figures["worst_ratio"],
                    "source": "this run",
                }
            )
    if accept.exists():
        balanced: dict[str, Any] = json.loads(accept.read_text())["summary"]["balanced"]
        for spread in ("paced, new connections", "saturated, new connections"):
            rows.append(
                {
                    "goal": f"busiest/quietest ≤ 1.2, {spread} (issue 17)",
                    "median": balanced[spread]["median"],
                    "worst": balanced[spread]["worst"],
                    "source": "accept.md",
                }
            )
        rows.append(
            {
                "goal": "one worker of two stopped: ≥ 45 % of the healthy new-connection rate "
                "(issue 15), shown as a fraction",
                "median": balanced["stuck_kept"],
                "worst": None,
                "source": "accept.md",
            }
        )
    return rows


def summarize(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, Any]] = data["results"]
    for name, entry in results.items():
        runs: dict[str, list[dict[str, Any]]] = entry["runs"]
        row: dict[str, Any] = {"workers": entry["workers"]}
        for endpoint in ENDPOINTS:
            outcomes = runs[endpoint]
            row[endpoint] = {
                key: statistics.median(float(o[key]) for o in outcomes if o[key] is not None)
                for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")
            }
            row[endpoint]["errors"] = sum(int(o["errors"]) for o in outcomes)
        workers = int(entry["workers"])
        for spread in SPREADS:
            ratios, shares, busiest = [], [], []
            for outcome in runs[spread]:
                counts = sorted(outcome["pids"].values())
                counts = [0] * max(0, workers - len(counts)) + counts
                total = sum(counts)
                shares.append([round(100 * c / total, 1) for c in counts])
                busiest.append(100 * counts[-1] / total)
                # A worker that got nothing makes the ratio infinite; None stands for that.
                ratios.append(counts[-1] / counts[0] if counts[0] else None)
            finite = [r for r in ratios if r is not None]
            row[spread] = {
                "ratio": statistics.median(finite) if len(finite) == len(ratios) else None,
                "worst_ratio": max(finite) if len(finite) == len(ratios) else None,
                "busiest_share": statistics.median(busiest),
                "shares": shares,
            }
        mem: dict[str, dict[str, float]] = entry["memory"]
        root = str(entry["root_pid"])
        row["rss_total"] = sum(m["rss"] for m in mem.values())
        row["pss_total"] = sum(m["pss"] for m in mem.values())
        others = [m for pid, m in mem.items() if pid != root]
        row["rss_root"] = mem[root]["rss"]
        row["worker_rss"] = statistics.mean(m["rss"] for m in others) if others else None
        row["worker_uss"] = statistics.mean(m["uss"] for m in others) if others else None
        row["worker_pss"] = statistics.mean(m["pss"] for m in others) if others else None
        summary[name] = row
    return summary


def markdown(data: dict[str, Any], summary: dict[str, dict[str, Any]]) -> str:
    def number(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{float(value):,.{digits}f}"

    before: dict[str, Any] = data["machine_before"]
    after: dict[str, Any] = data["machine_after"]
    lines = [
        "# Worker benchmark",
        "",
        f"`make bench-worker` on {before['date']}: wrk -c{data['connections']} (keep-alive), "
        f"{data['seconds']} s per run, {data['rounds']} rounds with the servers taking turns; "
        "medians over rounds. Everything on 127.0.0.1 of one machine "
        f"({before['affinity']} CPUs). One-worker servers run on CPU {SERVER_CPU} with wrk -t1 "
        f"on CPU {WRK_CPU}; two-worker servers share both CPUs with wrk -t{data['threads']}. "
        "*CPU µs/req*: the server's user and system CPU time (all its processes) over the "
        "requests it answered.",
        "",
        "| server | workers | `/` rps | `/` p50 ms | `/` p99 ms | `/` CPU µs/req | "
        "`/cpu?ms=1` rps | `/cpu?ms=1` p50 ms | `/cpu?ms=1` p99 ms | busiest/quietest, paced | "
        "busiest/quietest, saturated | idle RSS MiB (all) | per worker RSS / USS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in summary.items():
        root: dict[str, float] = row["/"]
        cpu: dict[str, float] = row["/cpu?ms=1"]
        per_worker = (
            f"{number(row['worker_rss'], 1)} / {number(row['worker_uss'], 1)}"
            if row["worker_rss"] is not None
            else f"{number(row['rss_root'], 1)} (one process)"
        )
        shares = []
        for spread in SPREADS:
            figures: dict[str, Any] = row[spread]
            if row["workers"] == 1:
                shares.append("-")
            elif figures["ratio"] is None:
                shares.append(f"inf ({number(figures['busiest_share'])}% on one)")
            else:
                shares.append(
                    f"{number(figures['ratio'], 2)} (worst {number(figures['worst_ratio'], 2)})"
                )
        lines.append(
            f"| {name} | {row['workers']} | {number(root['rps'])} | {number(root['p50_ms'], 2)} | "
            f"{number(root['p99_ms'], 2)} | {number(root['cpu_us_per_request'], 1)} | "
            f"{number(cpu['rps'])} | {number(cpu['p50_ms'], 2)} | "
            f"{number(cpu['p99_ms'], 2)} | "
            f"{shares[1]} | {shares[0]} | "
            f"{number(row['rss_total'], 1)} | {per_worker} |"
        )
    lines += [
        "",
        "Busiest/quietest: requests served by the busiest worker over those of the quietest, "
        "on `/pid`, median over rounds (worst round in brackets). *Paced*: every connection "
        "sends one request per 10 ms (6,400 requests/s, below saturation), so the spread "
        "shows how connections were spread; *saturated*: wrk flat out, so each worker's share "
        "follows the CPU time the scheduler gives it, with wrk on the same two CPUs.",
        "",
        "Shares per round, percent of requests per worker: "
        + "; ".join(
            f"{name}: paced {row['paced']['shares']}, saturated {row['saturated']['shares']}"
            for name, row in summary.items()
            if row["workers"] > 1
        ),
        "",
        "Goals, round by round: the contender's figure over its anchor's, both measured in "
        "the same round, so that the machine's slow and fast minutes cancel out. `rps`: "
        "requests per second, at least the bound; `p99`: the 99th percentile latency, at "
        "most the bound. *earlier*: the goals of the issue before these.",
        "",
        "| issue | contender / anchor | endpoint | figure | bound | median | per round | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {g['issue']} | {g['contender']} / {g['anchor']} | `{g['endpoint']}` | "
            f"{g['key'].removesuffix('_ms')} | {'≥' if g['key'] == 'rps' else '≤'} {g['bound']} | "
            f"{g['median']:.2f} | {', '.join(f'{r:.2f}' for r in g['rounds'])} | "
            f"{'yes' if g['met'] else 'no'} |"
            for g in data["goals"]
        ),
        "",
        "| goal | median | worst round | from |",
        "| --- | --- | --- | --- |",
        *(
            f"| {g['goal']} | {number(g['median'], 2)} | {number(g['worst'], 2)} | {g['source']} |"
            for g in data["spread_goals"]
        ),
        "",
        "Errors (non-2xx and socket errors, all runs): "
        + ", ".join(
            f"{name} {int(row['/']['errors']) + int(row['/cpu?ms=1']['errors'])}"
            for name, row in summary.items()
        ),
        "",
        f"Load before: `{before['uptime']}`; after: `{after['uptime']}`.",
        "",
        "Busiest processes before the run (`ps -eo pcpu,pid,comm --sort=-pcpu`):",
        "",
        "```",
        *before["busiest_processes"],
        "```",
        "",
        f"Python {before['python']}, node {before['node']}, {before['wrk']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_DURATION", "6")))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    data = measure(args.rounds, args.seconds)
    summary = summarize(data)
    data["summary"] = summary
    data["goals"] = goal_ratios(data)
    data["spread_goals"] = spread_goals(summary, args.out / "accept.json")
    for entry in data["results"].values():
        for outcomes in entry["runs"].values():
            for outcome in outcomes:
                outcome.pop("raw", None)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "worker.json").write_text(json.dumps(data, indent=1))
    (args.out / "worker.md").write_text(markdown(data, summary))
    log.info("wrote %s", args.out / "worker.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
