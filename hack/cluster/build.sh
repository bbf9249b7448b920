#!/usr/bin/env bash
# Builds the cluster's binaries from the Go module proxy into
# $CORESCALE_TOOLS/bin: Kubernetes (one `go build` for all commands so shared
# packages compile once), etcd, containerd with its runc shim, runc, and helm.
# Each component is rebuilt only when its pin in hack/versions.env changes.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
LOG_TAG=build

# The Kubernetes module ships a go.work for its staging tree; ours must not
# pick up any workspace. -trimpath keeps paths of this machine out of the
# binaries; nice keeps the shared CPUs usable for other work meanwhile.
export GOWORK=off GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
SRC=$CORESCALE_TOOLS/src
mkdir -p "$BIN" "$SRC"

command -v go >/dev/null || die "Go 1.26 or newer is needed on PATH to build the cluster (no release binaries can be downloaded here)"

# progress NAME: turns `go build -v` output (one line per compiled package)
# into a short running count, and keeps the full list in a log.
progress() {
  local name=$1 n=0 line
  local out=$SRC/${name// /-}.build.log
  : >"$out"
  while IFS= read -r line; do
    printf '%s\n' "$line" >>"$out"
    # Compiler errors ("# package" headers and "file.go:line:" messages)
    # are shown as they come, not only kept in the log.
    if [[ $line == "#"* || $line == *.go:[0-9]* || $line == "go: "* || $line == *"error:"* ]]; then
      printf '%s\n' "$line" >&2
      continue
    fi
    n=$((n + 1))
    if ((n % 100 == 0)); then
      log "$name: $n packages compiled (at ${line:0:70})"
    fi
  done
  log "$name: $n packages compiled; log in $out"
}

# go_build NAME DIR ARGS...: runs `go build -v ARGS` in DIR with progress.
go_build() {
  local name=$1 dir=$2
  shift 2
  log "$name: compiling (this takes a while on few cores)"
  (cd "$dir" && nice -n 10 go build -v -trimpath "$@" 2>&1) | progress "$name"
}

build_kubernetes() {
  local v=$KUBERNETES_VERSION
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  stamp_ok kubernetes "$v" && return 0
  local dir=$SRC/kubernetes-$v
  mkdir -p "$dir"
  log "kubernetes $v: fetching the module"
  local gomod
  gomod=$(cd "$SRC" && go mod download -json "k8s.io/kubernetes@$v" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [[ -f $gomod ]] || die "cannot find go.mod of k8s.io/kubernetes@$v"
  # Staging modules are published as k8s.io/X v0.MINOR.PATCH; the release's
  # own go.mod names them with local replace directives, so ours are derived
  # from it and follow whatever the pinned release contains.
  local staging=v0.${v#v1.}
  {
    printf 'module corescale.local/kubernetes-build\n\n'
    grep -E '^(go|godebug) ' "$gomod"
    printf '\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$v"
    awk -v sv="$staging" '$2 == "=>" && $3 ~ /^\.\/staging\/src\// { printf "\t%s => %s %s\n", $1, $1, sv }' "$gomod"
    printf ')\n'
  } >"$dir/go.mod"
  log "kubernetes $v: $(grep -c ' => ' "$dir/go.mod") staging modules pinned at $staging"
  local pkgs=()
  local c
  for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  (cd "$dir" && go get "${pkgs[@]/%/@$v}")
  local minor=${v#v1.}
  minor=${minor%%.*}
  local date
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitCommit=module-proxy-$v -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  CGO_ENABLED=0 go_build "kubernetes $v" "$dir" -ldflags "$ld" -o "$BIN/" "${pkgs[@]}"
  stamp_set kubernetes "$v"
}

build_etcd() {
  local v=$ETCD_VERSION
  stamp_ok etcd "$v" && return 0
  local dir=$SRC/etcd-$v
  mkdir -p "$dir"
  # etcd's own main lives in its root module; a two-line main calling
  # etcdmain.Main builds the same server from go.etcd.io/etcd/server/v3.
  cat >"$dir/main.go" <<'GO'
// Command etcd runs the etcd server from go.etcd.io/etcd/server/v3.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
GO
  printf 'module corescale.local/etcd-build\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$v" >"$dir/go.mod"
  log "etcd $v: resolving modules"
  (cd "$dir" && go mod tidy)
  CGO_ENABLED=0 go_build "etcd $v" "$dir" -ldflags "-s -w" -o "$BIN/etcd" .
  stamp_set etcd "$v"
}

# build_module NAME MODULE VERSION CGO TAGS LDFLAGS PKG...: builds commands of
# a module that has no replace directives, through a wrapper module so the
# versions come from that module's own go.mod.
build_module() {
  local name=$1 mod=$2 v=$3 cgo=$4 tags=$5 ld=$6
  shift 6
  stamp_ok "$name" "$v" && return 0
  local dir=$SRC/$name-$v
  mkdir -p "$dir"
  printf 'module corescale.local/%s-build\n\ngo 1.26.0\n\nrequire %s %s\n' "$name" "$mod" "$v" >"$dir/go.mod"
  log "$name $v: resolving modules"
  (cd "$dir" && go get "${@/%/@$v}")
  CGO_ENABLED=$cgo go_build "$name $v" "$dir" -tags "$tags" -ldflags "-s -w $ld" -o "$BIN/" "$@"
  stamp_set "$name" "$v"
}

build_containerd() {
  local m=github.com/containerd/containerd/v2
  # btrfs and devmapper snapshotters need cgo headers we do not use; the
  # overlayfs and native snapshotters are all the node needs.
  build_module containerd $m "$CONTAINERD_VERSION" 0 "no_btrfs no_devmapper no_zfs" \
    "-X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Revision=module-proxy" \
    $m/cmd/containerd $m/cmd/containerd-shim-runc-v2 $m/cmd/ctr
}

build_runc() {
  # seccomp needs cgo and libseccomp-dev (hack/deps.sh installs them).
  build_module runc github.com/opencontainers/runc "$RUNC_VERSION" 1 "seccomp urfave_cli_no_docs" \
    "-X main.version=${RUNC_VERSION#v}" github.com/opencontainers/runc
}

build_crictl() {
  # crictl removes every pod through the CRI when the cluster stops, so the
  # CNI plugins release addresses and veths as they do in normal operation.
  build_module crictl sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION" 0 "" \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools/cmd/crictl
}

build_helm() {
  local m=helm.sh/helm/v3 minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  # Without the Kubernetes version flags that helm's own Makefile sets,
  # `helm template` and `helm lint` assume a Kubernetes far older than ours.
  build_module helm $m "$HELM_VERSION" 0 "" \
    "-X $m/internal/version.version=$HELM_VERSION \
     -X $m/pkg/chartutil.k8sVersionMajor=1 -X $m/pkg/chartutil.k8sVersionMinor=$minor \
     -X $m/pkg/lint/rules.k8sVersionMajor=1 -X $m/pkg/lint/rules.k8sVersionMinor=$minor" \
    $m/cmd/helm
}

build_metrics_server() {
  local m=sigs.k8s.io/metrics-server
  build_module metrics-server $m "$METRICS_SERVER_VERSION" 0 "" \
    "-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION" $m/cmd/metrics-server
}

build_prometheus() {
  local m=github.com/prometheus/prometheus minor=${PROMETHEUS_VERSION#v0.}
  # v0.316.0 is Prometheus 3.16.0. remove_all_sd drops every service
  # discovery but the ones named back in: Kubernetes' alone, which Debian's
  # build lacks.
  local release=3.$((10#${minor%%.*} - 300)).${minor#*.}
  build_module prometheus $m "$PROMETHEUS_VERSION" 0 "remove_all_sd enable_kubernetes_sd" \
    "-X github.com/prometheus/common/version.Version=$release" $m/cmd/prometheus $m/cmd/promtool
}

build_kwok() {
  # Only the controller: it keeps fake nodes and their pods alive through the
  # API server; kwokctl (which would run a cluster of its own) is not needed.
  build_module kwok sigs.k8s.io/kwok "$KWOK_VERSION" 0 "" \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" sigs.k8s.io/kwok/cmd/kwok
}

# main: with no argument builds every part `make cluster` runs; with names
# only those (`make up` against another cluster builds the pinned helm alone,
# `make prometheus` adds Prometheus, `make nodes` KWOK).
PARTS=(kubernetes containerd runc crictl etcd helm metrics-server)
OPTIONAL_PARTS=(prometheus kwok)
main() {
  local t0=$SECONDS part
  (($#)) || set -- "${PARTS[@]}"
  for part in "$@"; do
    [[ " ${PARTS[*]} ${OPTIONAL_PARTS[*]} " == *" $part "* ]] ||
      die "unknown part '$part' (${PARTS[*]} ${OPTIONAL_PARTS[*]})"
    "build_${part//-/_}"
  done
  log "binaries in $BIN (took $((SECONDS - t0))s)"
}

main "$@"
