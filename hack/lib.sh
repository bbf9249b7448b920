# Shared by the hack/ scripts: where the cache lives, the pinned versions, and
# how to report progress. Sourced, never executed.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Builds live outside the repository so a clean clone reuses them and `git
# clean` never throws away an hour of compiling.
CORESCALE_CACHE=${CORESCALE_CACHE:-$HOME/.cache/corescale}
BIN=$CORESCALE_CACHE/bin
STAMPS=$CORESCALE_CACHE/stamps
export CORESCALE_CACHE
# shellcheck source=hack/versions.env
source "$ROOT/hack/versions.env"

log() {
  printf '%s [%s] %s\n' "$(date -u +%H:%M:%S)" "${LOG_TAG:-corescale}" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

# stamp NAME VERSION: true when NAME was built at VERSION and its binaries are
# still there, so a rebuild happens only when versions.env changes.
stamp_ok() {
  [[ -f $STAMPS/$1 && $(cat "$STAMPS/$1") == "$2" ]]
}

stamp_set() {
  mkdir -p "$STAMPS"
  printf '%s\n' "$2" >"$STAMPS/$1"
}
