# Shared by the hack/ scripts: where the cache lives, the pinned versions, and
# how to report progress. Sourced, never executed.
# shellcheck shell=bash
# Its variables are used by the scripts that source it:
# shellcheck disable=SC2034

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Two caches, both outside the repository so a clean clone reuses them and
# `git clean` never throws away an hour of compiling:
# - CORESCALE_TOOLS: the Go binaries built from the pins in versions.env, and
#   nothing else. A binary there is rebuilt only when its pin changes.
# - CORESCALE_CACHE: everything else (pause and base images, buildah's
#   storage, PKI, configs, cluster state and logs). CI points it at an empty
#   folder on every run, so the path a fresh machine takes is walked each time.
CORESCALE_CACHE=${CORESCALE_CACHE:-$HOME/.cache/corescale}
CORESCALE_TOOLS=${CORESCALE_TOOLS:-$HOME/.cache/corescale-tools}
BIN=$CORESCALE_TOOLS/bin
STAMPS=$CORESCALE_TOOLS/stamps
export CORESCALE_CACHE CORESCALE_TOOLS
# shellcheck source=hack/versions.env
source "$ROOT/hack/versions.env"

log() {
  printf '%s [%s] %s\n' "$(date -u +%H:%M:%S)" "${LOG_TAG:-corescale}" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

# on_err: under `set -e` a failing command ends a script without a word; this
# names the script, the line and the command instead. errtrace (-E) makes the
# trap reach into functions and subshells; it is reported once, where the
# failure happened (BASH_SUBSHELL tells a command substitution or a pipeline
# stage from the script itself, whose own failing line is reported after).
on_err() {
  local rc=$1 line=$2 cmd=$3 file=${BASH_SOURCE[1]}
  ((BASH_SUBSHELL == 0)) || return 0
  # BASH_COMMAND holds one stage of a pipeline; the source line holds it all.
  if [[ -f $file ]]; then
    cmd=$(sed -n "${line}{s/^[[:space:]]*//;p}" "$file")
  fi
  log "FAILED (exit $rc) at ${file#"$ROOT"/}:$line: $cmd"
}
set -E
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

# stamp_ok NAME VERSION [DIR]: true when NAME was built at VERSION, so a
# rebuild happens only when versions.env (or a recipe) changes. DIR holds the
# stamps, the tools cache's by default.
stamp_ok() {
  local f=${3:-$STAMPS}/$1
  [[ -f $f && $(cat "$f") == "$2" ]]
}

stamp_set() {
  local d=${3:-$STAMPS}
  mkdir -p "$d"
  printf '%s\n' "$2" >"$d/$1"
}

# Images are built with buildah: no daemon to start and stop, and nothing
# touching iptables (dockerd would set the FORWARD policy to DROP and break
# pod traffic on the CNI bridge). Its storage lives in the cache so images
# survive between runs; its run state lives with the cluster's.
IMAGES=$CORESCALE_CACHE/images
# buildah's run state (locks, mount counts) belongs to one storage: a cache of
# its own gets a run folder of its own, on tmpfs so a reboot clears it.
BUILDAH_RUNROOT=/run/corescale-buildah/$(printf '%s' "$CORESCALE_CACHE" | cksum | cut -d' ' -f1)
bah() {
  buildah --root "$CORESCALE_CACHE/containers/storage" --runroot "$BUILDAH_RUNROOT" \
    --storage-driver overlay "$@"
}

# Names the node's containerd knows the registry-less images by. Pods use
# the short forms (corescale-base:bookworm) with imagePullPolicy IfNotPresent.
PAUSE_IMAGE=docker.io/library/corescale-pause:1
BASE_IMAGE_REF=docker.io/library/corescale-base:$BASE_SUITE
