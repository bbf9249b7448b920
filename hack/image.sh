#!/usr/bin/env bash
# `make image`: builds the project's Dockerfile as corescale:dev on the
# registry-less base image, and loads it into the local cluster's containerd
# when that cluster is running.
#
# Wheels are built on the host first (its Python has the base image's minor
# version), so the image build itself needs no network and no compiler, and
# installs exactly the wheels this machine resolved.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$ROOT/hack/cluster/env.sh"
LOG_TAG=image
export PATH=$BIN:$PATH

IMAGE=docker.io/library/corescale:dev
VENV=${VENV:-$ROOT/.venv}

"$ROOT/hack/images/build.sh"

[[ -x $VENV/bin/pip ]] || "$ROOT/hack/venv.sh" "$VENV"
wheels=$ROOT/build/wheels
rm -rf "$wheels"
log "building wheels of corescale[fast,operator] into $wheels"
"$VENV/bin/pip" wheel --quiet --wheel-dir "$wheels" "${ROOT}[fast,operator]"

log "building $IMAGE on localhost/corescale-base:$BASE_SUITE"
# chroot isolation: the RUN steps need neither network nor namespaces, and
# nothing is added to the host's iptables.
bah bud --quiet --isolation chroot --pull=never \
  --build-arg "BASE_IMAGE=localhost/corescale-base:$BASE_SUITE" \
  -t localhost/corescale:dev -f "$ROOT/Dockerfile" "$ROOT" >/dev/null
# The previous build's image is now untagged: drop it so storage stays small.
bah rmi --prune >/dev/null 2>&1 || true
log "image size: $(bah images --format '{{.Size}}' localhost/corescale:dev)"

tar=$IMAGES/corescale.tar
rm -f "$tar"
bah push --quiet localhost/corescale:dev "docker-archive:$tar:$IMAGE"

if "$ROOT/hack/cluster.sh" status; then
  ctr_k8s images import "$tar" >/dev/null
  log "loaded $IMAGE into the local cluster's node"
else
  log "the local cluster is not running: $IMAGE was built but not loaded (run make cluster, then make image)"
fi
