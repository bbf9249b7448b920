#!/usr/bin/env bash
# Builds the two images the cluster needs without any registry: the pod
# sandbox ("pause") from hack/images/pause.c, and a small Debian base with
# python3 from debootstrap. Both are written as docker archives under
# $CORESCALE_CACHE/images for containerd to import; the base also stays in
# buildah's storage as the BASE_IMAGE of the project's Dockerfile.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
LOG_TAG=images

# Bump when the recipe below changes, so cached images are rebuilt.
RECIPE=1
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$IMAGES"

build_pause() {
  stamp_ok pause "$RECIPE" "$IMAGES" && [[ -f $IMAGES/pause.tar ]] && return 0
  log "pause: compiling $ROOT/hack/images/pause.c"
  local work
  work=$(mktemp -d)
  gcc -static -Os -s -Wall -Wextra -Werror -o "$work/pause" "$ROOT/hack/images/pause.c"
  local c
  c=$(bah from scratch)
  bah copy "$c" "$work/pause" /pause >/dev/null
  # 65535 is the conventional sandbox user: the pause process needs no
  # privilege at all.
  bah config --entrypoint '["/pause"]' --user 65535:65535 "$c"
  bah commit -q --rm "$c" localhost/corescale-pause:1 >/dev/null
  rm -f "$IMAGES/pause.tar"
  bah push -q localhost/corescale-pause:1 "docker-archive:$IMAGES/pause.tar:$PAUSE_IMAGE"
  rm -rf "$work"
  stamp_set pause "$RECIPE" "$IMAGES"
}

build_base() {
  stamp_ok base "$BASE_SUITE-$RECIPE" "$IMAGES" && [[ -f $IMAGES/base.tar ]] && return 0
  local rootfs=$IMAGES/rootfs-$BASE_SUITE
  # An interrupted debootstrap leaves /proc and /sys mounted in the target.
  # (unmount_under is the cluster's; this script runs without it.) No mount
  # at all is the normal case, so grep's "no match" must not end the script.
  findmnt -rn -o TARGET | { grep "^$rootfs/" || true; } | sort -r | xargs -r umount -l
  rm -rf --one-file-system "$rootfs" "$rootfs.tar"
  log "base: debootstrap $BASE_SUITE with python3 from $DEBIAN_MIRROR (a few minutes)"
  # minbase: dpkg, apt and the essential set only. python3-venv lets the
  # Dockerfile make a virtualenv; passwd gives it useradd.
  debootstrap --variant=minbase --include=python3,python3-venv,passwd \
    "$BASE_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$IMAGES/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $IMAGES/debootstrap.log"
  # Nothing in the image reads documentation, translations or apt's lists;
  # dropping them roughly halves its size.
  rm -rf "$rootfs"/usr/share/{doc,man,info,locale}/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* "$rootfs"/tmp/*
  local c
  c=$(bah from scratch)
  # `buildah add` unpacks a local tar archive, keeping owners and modes.
  tar -C "$rootfs" -cf "$rootfs.tar" .
  bah add "$c" "$rootfs.tar" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd '["python3"]' "$c"
  bah commit -q --rm "$c" "localhost/corescale-base:$BASE_SUITE" >/dev/null
  rm -f "$IMAGES/base.tar"
  bah push -q "localhost/corescale-base:$BASE_SUITE" "docker-archive:$IMAGES/base.tar:$BASE_IMAGE_REF"
  rm -rf "$rootfs" "$rootfs.tar"
  stamp_set base "$BASE_SUITE-$RECIPE" "$IMAGES"
}

build_pause
build_base
log "images ready in $IMAGES"
