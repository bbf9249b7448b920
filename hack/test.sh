#!/usr/bin/env bash
# `make test` and its parts: every phase from the Debian packages to the
# end-to-end tests, each timed, with one summary table at the end.
#
#   hack/test.sh                 every phase (what `make test` and CI run)
#   hack/test.sh PHASE...        only those phases, e.g. `hack/test.sh unit`
#   CORESCALE_TEST_DOWN=1        also stop the cluster at the end (CI)
#
# A setup phase that fails skips the phases that need it (a broken cluster
# skips end-to-end, not the unit tests); every test phase runs even when an
# earlier one failed, so one run shows everything that is wrong. Each pytest
# run prints its own closing line; the last line sums them all.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
LOG_TAG=tests
cd "$ROOT" || exit 2

VENV=${VENV:-.venv}
PY=$VENV/bin/python
RESULTS=$ROOT/build/test-results

# name|needs|command: the phases in order. `needs` names the earlier phases
# that must have passed. The go-builds phase also builds what only some
# tests start (Prometheus, KWOK), so no test spends its timeout compiling.
PHASES=(
  "packages||hack/deps.sh"
  "venv|packages|make -s venv"
  "go-builds|packages|hack/cluster/build.sh && hack/cluster/build.sh prometheus kwok"
  "images|packages|hack/images/build.sh"
  "cluster|go-builds images|hack/cluster.sh up"
  "project-image|cluster venv|hack/image.sh"
  "lint|venv|make -s lint"
  "unit|venv|pytest_phase unit 'not e2e and not worker and not chart'"
  "chart|venv go-builds|pytest_phase chart chart"
  "worker|venv|pytest_phase worker worker"
  "e2e|cluster project-image|pytest_phase e2e e2e"
)
DOWN_PHASE="cluster-down||hack/cluster.sh down"

# pytest_phase NAME MARKERS: one pytest run, its results kept as JUnit XML
# so the closing line can add every run up.
pytest_phase() {
  mkdir -p "$RESULTS"
  "$PY" -m pytest -m "$2" --junitxml="$RESULTS/$1.xml"
}

declare -A STATUS SECS
ORDER=()

run_phase() {
  local name=$1 needs=$2 cmd=$3 n t0
  ORDER+=("$name")
  for n in $needs; do
    if [[ -n ${STATUS[$n]:-} && ${STATUS[$n]} != passed ]]; then
      STATUS[$name]="skipped ($n ${STATUS[$n]%% *})"
      SECS[$name]=0
      log "== $name: skipped, $n did not pass"
      return
    fi
  done
  log "== $name: $cmd"
  t0=$SECONDS
  if eval "$cmd"; then
    STATUS[$name]=passed
  else
    STATUS[$name]="failed (exit $?)"
  fi
  SECS[$name]=$((SECONDS - t0))
  log "== $name: ${STATUS[$name]} in ${SECS[$name]}s"
}

summary() {
  local name total=0
  printf '\n%-14s %8s  %s\n' phase time result
  for name in "${ORDER[@]}"; do
    printf '%-14s %5d:%02d  %s\n' "$name" $((SECS[$name] / 60)) $((SECS[$name] % 60)) "${STATUS[$name]}"
    total=$((total + SECS[$name]))
  done
  printf '%-14s %5d:%02d\n\n' total $((total / 60)) $((total % 60))
  # The sum of every pytest run of this invocation, in pytest's own words.
  "$PY" - "$RESULTS" "${ORDER[@]}" <<'PY' 2>/dev/null || true
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

results, names = Path(sys.argv[1]), sys.argv[2:]
counts = {"passed": 0, "failed": 0, "skipped": 0}
for name in names:
    path = results / f"{name}.xml"
    if not path.exists():
        continue
    for suite in ET.parse(path).getroot().iter("testsuite"):
        tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        counts["failed"] += failed
        counts["skipped"] += skipped
        counts["passed"] += tests - failed - skipped
print(f"total: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
PY
}

main() {
  local entry name wanted=("$@") w selected known=" "
  for entry in "${PHASES[@]}"; do known+="${entry%%|*} "; done
  for w in "${wanted[@]}"; do
    [[ $known == *" $w "* ]] || die "unknown phase '$w'; the phases are:$known"
  done
  rm -f "$RESULTS"/*.xml
  for entry in "${PHASES[@]}"; do
    IFS='|' read -r name needs cmd <<<"$entry"
    if ((${#wanted[@]})); then
      selected=0
      for w in "${wanted[@]}"; do [[ $w == "$name" ]] && selected=1; done
      ((selected)) || continue
    fi
    run_phase "$name" "$needs" "$cmd"
  done
  if [[ ${CORESCALE_TEST_DOWN:-0} == 1 ]]; then
    IFS='|' read -r name needs cmd <<<"$DOWN_PHASE"
    run_phase "$name" "$needs" "$cmd"
  fi
  summary
  for name in "${ORDER[@]}"; do
    [[ ${STATUS[$name]} == passed ]] || return 1
  done
}

# `|| exit`: a failed phase is reported in the table, not again by the ERR trap.
main "$@" || exit 1
