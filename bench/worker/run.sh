#!/usr/bin/env bash
# `make bench-worker`: the accept-strategy measurement, then corescale single
# and prefork against gunicorn's aiohttp workers (plain and uvloop) and Node's
# cluster module, measured side by side with wrk on 127.0.0.1. Writes
# bench/results/worker.{md,json,png} and bench/results/accept.{md,json}.
# BENCH_DURATION (s per wrk run, default 6) and BENCH_ROUNDS (default 3) trade
# time for steadier figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${VENV:-.venv}
for tool in wrk node valgrind; do
  command -v "$tool" >/dev/null || { echo "bench-worker: $tool is missing (make deps installs it)" >&2; exit 1; }
done
mkdir -p bench/results
# accept.py first: worker.md's goal table takes the spread and stuck-worker
# figures from its accept.json.
"$venv/bin/python" bench/worker/accept.py --out bench/results
"$venv/bin/python" bench/worker/bench.py --out bench/results
"$venv/bin/python" bench/worker/plot.py bench/results/worker.json bench/results/worker.png
"$venv/bin/python" bench/worker/instructions.py --out bench/results
echo "bench-worker: bench/results/worker.md, worker.png, accept.md and instructions.md"
