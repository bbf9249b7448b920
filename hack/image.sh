#!/usr/bin/env bash
# `make image`: builds the Dockerfile's two targets on the registry-less base
# image, corescale-worker:dev (the slim worker image applications build FROM,
# and the default image of CoreClusters) and corescale-operator:dev, and
# loads both into the local cluster's containerd when that cluster is
# running.
#
# Wheels are built on the host first (its Python has the base image's minor
# version), so the image build itself needs no network and no compiler, and
# installs exactly the wheels this machine resolved.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$ROOT/hack/cluster/env.sh"
LOG_TAG=image
export PATH=$BIN:$PATH

TAG=dev
TARGETS=(worker operator)
VENV=${VENV:-$ROOT/.venv}

"$ROOT/hack/images/build.sh"

[[ -x $VENV/bin/pip ]] || "$ROOT/hack/venv.sh" "$VENV"
wheels=$ROOT/build/wheels
rm -rf "$wheels"
log "building wheels of corescale-worker[fast] and corescale-operator into $wheels"
"$VENV/bin/pip" wheel --quiet --wheel-dir "$wheels" "$ROOT/worker[fast]" "$ROOT/operator"

for target in "${TARGETS[@]}"; do
  image=localhost/corescale-$target:$TAG
  log "building $image (target $target) on localhost/corescale-base:$BASE_SUITE"
  # chroot isolation: the RUN steps need neither network nor namespaces, and
  # nothing is added to the host's iptables.
  bah bud --quiet --isolation chroot --pull=never --target "$target" \
    --build-arg "BASE_IMAGE=localhost/corescale-base:$BASE_SUITE" \
    -t "$image" -f "$ROOT/Dockerfile" "$ROOT" >/dev/null
  log "$image size: $(bah images --format '{{.Size}}' "$image")"
done
# The previous build's images are now untagged: drop them so storage stays small.
bah rmi --prune >/dev/null 2>&1 || true

running=false
if "$ROOT/hack/cluster.sh" status; then running=true; fi
for target in "${TARGETS[@]}"; do
  ref=docker.io/library/corescale-$target:$TAG
  tar=$IMAGES/corescale-$target.tar
  rm -f "$tar"
  bah push --quiet "localhost/corescale-$target:$TAG" "docker-archive:$tar:$ref"
  if $running; then
    ctr_k8s images import "$tar" >/dev/null
    log "loaded $ref into the local cluster's node"
  fi
done
$running || log "the local cluster is not running: the images were built but not loaded (run make cluster, then make image)"
