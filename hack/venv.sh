#!/usr/bin/env bash
# Creates the project's virtualenv: corescale-worker (with uvloop) and
# corescale-operator installed editable from worker/ and operator/, and the
# root pyproject.toml's dev dependency group (ruff, mypy, pytest, ...).
# Idempotent: an existing venv is reused and updated.
set -euo pipefail
venv=${1:-.venv}
cd "$(dirname "$0")/.."
if [[ ! -x $venv/bin/python ]]; then
  python3 -m venv "$venv"
fi
# pip 25.1 is the first to install dependency groups (--group).
"$venv/bin/python" -m pip install -q --upgrade 'pip>=25.1' setuptools wheel
# setuptools warns, for each editable install of a namespace package, that a
# folder named like the package could shadow it; none does here (the
# namespace corescale exists only under worker/src and operator/src).
"$venv/bin/python" -m pip install -q -e './worker[fast]' -e ./operator --group dev 2> >(grep -v -e '^ *$' -e BuildBackendWarning -e '!!' -e '\*\*\*\*' -e 'Please be careful' -e 'name as your package' -e 'with strategy, WheelFile' >&2)
