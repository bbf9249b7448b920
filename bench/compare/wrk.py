"""wrk, the load generator of ``make bench-compare``, and its figures.

wrk.lua prints them as one JSON line: wrk's own text rounds the percentiles
and has no parseable maximum.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def wrk(
    url: str,
    path: str,
    connections: int,
    seconds: int,
    *,
    new_connections: bool,
    mix: int | None = None,
    threads: int = 1,
    cpus: str | None = None,
) -> dict[str, Any]:
    """One wrk run; ``cpus`` pins it (taskset), ``mix`` sends the uneven mix of wrk.lua."""
    command = [
        *(["taskset", "-c", cpus] if cpus else []),
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "wrk.lua"),
        *(["-H", "Connection: close"] if new_connections else []),
        url + path,
    ]
    env = {**os.environ, **({"COMPARE_MIX": str(mix)} if mix else {})}
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 60, env=env
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("COMPARE "))
    figures = json.loads(line.removeprefix("COMPARE "))
    failed = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "rps": figures["requests"] / (figures["duration_us"] / 1e6),
        "requests": figures["requests"],
        "p50_ms": figures["p50_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "max_ms": figures["max_us"] / 1000,
        "failed": failed,
    }
