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

# Images are built with buildah: no daemon to start and stop, and nothing
# touching iptables (dockerd would set the FORWARD policy to DROP and break
# pod traffic on the CNI bridge). Its storage lives in the cache so images
# survive between runs; its run state lives with the cluster's.
IMAGES=$CORESCALE_CACHE/images
bah() {
  buildah --root "$CORESCALE_CACHE/containers/storage" --runroot /run/corescale/buildah \
    --storage-driver overlay "$@"
}

# Names the node's containerd knows the registry-less images by. Pods use
# the short forms (corescale-base:bookworm) with imagePullPolicy IfNotPresent.
PAUSE_IMAGE=docker.io/library/corescale-pause:1
BASE_IMAGE_REF=docker.io/library/corescale-base:$BASE_SUITE
