#!/usr/bin/env bash
# mypy names modules after folders, so worker/ and operator/ would be checked
# as `worker` and `operator` (the standard library's name). A link tree under
# build/typecheck gives them their real names, corescale.worker and
# corescale.operator, without any such package existing in the repository.
set -euo pipefail
venv=${1:-.venv}
cd "$(dirname "$0")/.."
tree=build/typecheck/corescale
mkdir -p "$tree"
ln -sfn ../../../worker "$tree/worker"
ln -sfn ../../../operator "$tree/operator"
"$venv/bin/mypy" -p corescale.worker -p corescale.operator
