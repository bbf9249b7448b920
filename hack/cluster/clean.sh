# Removal of everything the local cluster creates on the host, written to
# work whatever state an earlier run ended in (stopped cleanly, killed, or
# the machine's processes gone but mounts, links and rules still there).
# shellcheck shell=bash

# pid_of NAME: the pid of component NAME if its pid file names a live
# process running our binary (never a recycled pid of something else).
pid_of() {
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$BIN/$1" ]] || return 1
  printf '%s\n' "$pid"
}

# stop_pid PID: SIGTERM, then SIGKILL after a grace period.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# our_processes: pids whose executable is one of our cluster binaries,
# found by path so that a crash that lost the pid files leaves nothing
# running. kubectl, helm and crictl are left alone: tests may be using them.
our_processes() {
  local exe p name
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    exe=${exe% (deleted)}
    [[ $exe == "$BIN"/* ]] || continue
    name=${exe#"$BIN"/}
    case $name in
      etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy | \
        containerd | containerd-shim-runc-v2 | runc | metrics-server | prometheus | kwok) printf '%s\n' "${p#/proc/}" ;;
    esac
  done
}

# kill_pods: kills every process in the kubelet's pod cgroups, then removes
# those cgroups (deepest first) from every v1 hierarchy.
kill_pods() {
  local h pids
  for h in /sys/fs/cgroup/*/kubepods; do
    [[ -d $h ]] || continue
    # A pod's cgroup may vanish between find and cat; find then fails, which
    # under pipefail would end the caller: what was read is enough.
    pids=$({ find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null || true; } | sort -u)
    if [[ -n $pids ]]; then
      # shellcheck disable=SC2086 # one pid per word
      kill -KILL $pids 2>/dev/null || true
    fi
  done
  sleep 0.5
  for h in /sys/fs/cgroup/*/kubepods; do
    [[ -d $h ]] || continue
    find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

# unmount_under DIR...: lazily unmounts every mount below the given paths,
# deepest first (pod volumes, container root filesystems, shm, netns).
unmount_under() {
  local target prefix
  findmnt -rn -o TARGET | sort -r | while read -r target; do
    for prefix in "$@"; do
      if [[ $target == "$prefix"/* || $target == "$prefix" ]]; then
        umount -l "$target" 2>/dev/null || true
        break
      fi
    done
  done
}

# clean_network: removes the pods' veths, the bridge and the node's dummy
# interface, and every iptables rule and chain that kube-proxy, the kubelet
# or CNI added (all named KUBE-* or CNI-*).
clean_network() {
  local link
  for link in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$link" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  ip link del "$NODE_IF" 2>/dev/null || true
  local save restore rules
  for save in iptables-save ip6tables-save; do
    restore=${save/-save/-restore}
    command -v "$save" >/dev/null || continue
    rules=$("$save")
    grep -qE '^:(KUBE|CNI)-' <<<"$rules" || continue
    # One atomic --noflush restore per family: drop the jumps from built-in
    # chains into ours, then flush and delete our chains. Every other rule
    # stays as it was.
    awk '
      /^\*/ { table = $0; tables[table] = 1; next }
      /^:(KUBE|CNI)-/ { chains[table] = chains[table] " " substr($1, 2); next }
      /^-A / && / -j (KUBE|CNI)-/ && $2 !~ /^(KUBE|CNI)-/ { dels[table] = dels[table] "-D " substr($0, 4) "\n" }
      END {
        for (t in tables) {
          if (chains[t] == "") continue
          n = split(chains[t], c, " ")
          printf "%s\n%s", t, dels[t]
          for (i = 1; i <= n; i++) printf "-F %s\n", c[i]
          for (i = 1; i <= n; i++) printf "-X %s\n", c[i]
          print "COMMIT"
        }
      }
    ' <<<"$rules" | "$restore" --noflush
  done
}

# clean_all: stops whatever runs and removes all transient state. Logs,
# certificates and containerd's image store are kept.
clean_all() {
  local i pid
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    if pid=$(pid_of "${COMPONENTS[i]}"); then
      log "stopping ${COMPONENTS[i]} ($pid)"
      stop_pid "$pid"
    fi
  done
  for pid in $(our_processes); do
    log "killing leftover $(readlink "/proc/$pid/exe" 2>/dev/null) ($pid)"
    kill -KILL "$pid" 2>/dev/null || true
  done
  kill_pods
  unmount_under "$VAR" "$RUN" "$CONTAINERD_ROOT"
  clean_network
  # --one-file-system: should a mount have survived, never delete through it.
  rm -rf --one-file-system "$VAR" "$RUN" "$CONF"
  clean_fixed_paths
}

# clean_fixed_paths: the few places outside our folders that containerd,
# CNI and the kubelet write to whatever they are configured with.
clean_fixed_paths() {
  # CNI caches each attachment's result, named after the network.
  rm -f /var/lib/cni/results/corescale-*
  # Shim sockets: containerd always puts them here. They are removed only
  # when no containerd at all runs, as another one may share the folder.
  if ! pgrep -x containerd >/dev/null; then
    rm -rf /run/containerd/s /run/containerd/runc/k8s.io
    rmdir /run/containerd/runc /run/containerd 2>/dev/null || true
  fi
  # The kubelet's device-plugin folder ignores --root-dir.
  if ! pgrep -x kubelet >/dev/null; then
    rm -rf /var/lib/kubelet/device-plugins
    rmdir /var/lib/kubelet 2>/dev/null || true
  fi
}
