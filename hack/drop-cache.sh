#!/usr/bin/env bash
# hack/drop-cache.sh DIR: removes a CORESCALE_CACHE folder that CI made for one
# run, with whatever buildah or containerd still holds mounted below it and
# the buildah run state that belongs to it. The cluster must be down.
set -euo pipefail
dir=${1:?usage: $0 CORESCALE_CACHE-folder}
[[ -d $dir ]] || exit 0
CORESCALE_CACHE=$(cd "$dir" && pwd)
source "$(dirname "$0")/lib.sh"
LOG_TAG=drop-cache
if "$ROOT/hack/cluster.sh" status >/dev/null 2>&1; then
  die "the local cluster still runs on $CORESCALE_CACHE: make cluster-down first"
fi
bah rm --all >/dev/null 2>&1 || true
findmnt -rn -o TARGET | { grep -F "$CORESCALE_CACHE/" || true; } | sort -r | xargs -r umount -l
# --one-file-system: should a mount have survived, never delete through it.
rm -rf --one-file-system "$CORESCALE_CACHE" "$BUILDAH_RUNROOT"
log "removed $CORESCALE_CACHE"
