#!/usr/bin/env bash
# Creates the project's virtualenv and installs corescale (editable) with the
# development extras. Idempotent: an existing venv is reused and updated.
set -euo pipefail
venv=${1:-.venv}
cd "$(dirname "$0")/.."
# Run from the root, `python -m` would import operator/ as the standard
# library's `operator`: keep the current folder off sys.path.
export PYTHONSAFEPATH=1
if [[ ! -x $venv/bin/python ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel
"$venv/bin/python" -m pip install -q -e '.[dev]'
