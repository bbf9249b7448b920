#!/usr/bin/env bash
# `make lint`'s shell part: shellcheck over every shell script in the
# repository, found by extension or shebang so that a new one is never missed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LOG_TAG=shellcheck
cd "$ROOT"
command -v shellcheck >/dev/null || die "shellcheck is missing: make deps installs it"
scripts=()
while IFS= read -r f; do
  [[ -f $f ]] || continue
  if [[ $f == *.sh ]] || head -c 64 "$f" | grep -qE '^#!.*\b(ba)?sh\b'; then
    scripts+=("$f")
  fi
done < <(git ls-files --cached --others --exclude-standard)
# -x follows `source` to the files named by `# shellcheck source=` lines.
shellcheck -x -P SCRIPTDIR "${scripts[@]}"
log "${#scripts[@]} scripts clean"
