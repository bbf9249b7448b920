#!/usr/bin/env bash
# Installs the Debian packages the local cluster, the image build and the
# benchmarks need. Idempotent and quick when everything is present: apt runs
# (and `apt-get update` with it) only when a package is missing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LOG_TAG=deps

packages=(
  # node networking: CNI bridge/host-local/portmap/loopback plugins, the
  # tools kubelet and kube-proxy call
  containernetworking-plugins iptables conntrack ethtool iproute2 ebtables socat util-linux
  # certificates of the cluster
  openssl ca-certificates curl
  # runc is built from the module proxy with seccomp, which needs cgo
  gcc libc6-dev libseccomp-dev pkg-config
  # images without a registry: debootstrap for the base, gcc for pause,
  # buildah (daemonless, no iptables changes) for the Dockerfile
  debootstrap buildah
  # the project's virtualenv and the worker benchmark's load generator
  python3 python3-venv python3-dev wrk valgrind
  # make lint checks every shell script
  shellcheck
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
# The worker benchmark's Node.js cluster-module server needs node, which a
# machine may already have from elsewhere than Debian: only add it when absent.
command -v node >/dev/null || missing+=(nodejs)

if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "all Debian packages present"
fi

# Go is not installable from Debian at the version Kubernetes needs, and
# release tarballs cannot be downloaded here: it must already be on PATH.
if ! command -v go >/dev/null; then
  die "Go 1.26+ is required on PATH (Kubernetes ${KUBERNETES_VERSION} needs it)"
fi
gov=$(go env GOVERSION)
gominor=${gov#go1.}
gominor=${gominor%%.*}
((gominor >= 26)) || die "Go 1.26+ is required, found $gov"
