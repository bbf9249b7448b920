#!/usr/bin/env bash
# The local single-node Kubernetes cluster: built from source through the Go
# module proxy (hack/cluster/build.sh) and run as host processes, the way
# Kubernetes' own hack/local-up-cluster.sh does.
#
#   hack/cluster.sh up          build what is missing, start, wait until a
#                               Service routes to a pod (no-op when healthy)
#   hack/cluster.sh down        stop and remove every process, mount, link and
#                               iptables rule of the cluster
#   hack/cluster.sh status      exit 0 when the cluster is up and healthy
#   hack/cluster.sh kubeconfig  print the admin kubeconfig's path
#   hack/cluster.sh prometheus  build (once) and start Prometheus beside the
#                               running cluster: pods discovered through the
#                               API, scraped every second (no-op when running)
#   hack/cluster.sh nodes [N [POOL]]
#                               build (once) and start KWOK beside the running
#                               cluster; with N, make pool POOL (default kwok)
#                               exactly N simulated nodes POOL-0..N-1 of one
#                               CPU each over three zones (N=0 removes them)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$ROOT/hack/cluster/env.sh"
source "$ROOT/hack/cluster/pki.sh"
source "$ROOT/hack/cluster/clean.sh"
LOG_TAG=cluster
export PATH=$BIN:$PATH

kc() {
  kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"
}

# on_exit: whatever step failed (lib.sh's ERR trap has named the command),
# say which logs exist to read: this start's own, and each component's.
on_exit() {
  local rc=$? f components=""
  ((rc == 0)) && return
  for f in "$LOGS"/*.log; do
    [[ -f $f && $f != */up.log ]] && components+=" ${f##*/}"
  done
  [[ -z $components ]] || components="; logs of the components in $LOGS:$components"
  log "FAILED (exit $rc). This start's log: $LOGS/up.log$components"
}

# start NAME ARGS...: runs our binary NAME in its own session (so that the
# caller's Ctrl-C or exit does not reach it) with its output in LOGS/NAME.log.
start() {
  local name=$1
  shift
  log "starting $name"
  printf '\n===== %s %s\n' "$(date -u +%FT%TZ)" "$name" >>"$LOGS/$name.log"
  # The pid is written by the process itself just before it becomes the
  # binary (exec keeps it), because setsid forks when it has to.
  # shellcheck disable=SC2016 # expanded by the inner bash, on purpose
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$BIN/$name" "$@" \
    >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
}

# wait_until WHAT SECONDS CMD...: polls CMD until it succeeds; fails naming
# the component log to read if it never does, or if a component died.
wait_until() {
  local what=$1 timeout=$2 c
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    for c in "${COMPONENTS[@]}"; do
      # kill -0 rather than pid_of: just after start the pid may still be
      # the bash that is about to exec the binary.
      if [[ -s $RUN/$c.pid ]] && ! kill -0 "$(cat "$RUN/$c.pid")" 2>/dev/null; then
        die "$c exited while waiting for $what; see $LOGS/$c.log"
      fi
    done
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.5
  done
}

prepare_host() {
  [[ $(id -u) == 0 ]] || die "the local cluster runs kubelet and containerd: run as root"
  # Built into some kernels, modules in others; either way they must work.
  modprobe -q overlay 2>/dev/null || true
  modprobe -q br_netfilter 2>/dev/null || true
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 \
    || die "bridge netfilter is missing (modprobe br_netfilter): Services cannot route between pods"
  mkdir -p "$LOGS" "$VAR" "$RUN" "$CONF" "$CONTAINERD_ROOT"
  # A bridge without ports serves as a dummy interface (this kernel has no
  # dummy driver and no modules).
  ip link add "$NODE_IF" type bridge
  ip addr add "$NODE_IP/32" dev "$NODE_IF"
  ip link set "$NODE_IF" up
  ip route add "$SERVICE_CIDR" dev "$NODE_IF" src "$NODE_IP"
  # The CNI bridge plugin adopts an existing bridge; creating it here gives
  # the pod network a route before the first pod exists.
  ip link add "$BRIDGE" type bridge
  ip addr add "$POD_GATEWAY/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
}

write_configs() {
  cat >"$CONF/net.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "corescale",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$RUN/ipam"
      }
    }
  ]
}
JSON
  mkdir -p "$CONF/net.d"
  mv "$CONF/net.conflist" "$CONF/net.d/10-corescale.conflist"

  cat >"$CONF/containerd.toml" <<TOML
version = 3
root = "$CONTAINERD_ROOT"
state = "$RUN/containerd"

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$PAUSE_IMAGE'

  [plugins.'io.containerd.cri.v1.runtime']
    # Network namespaces under our state dir, so cleanup finds them.
    netns_mounts_under_state_dir = true
    # This VM withholds CAP_SYS_RESOURCE even from root, so no process may
    # lower its OOM score below 0 (the kubelet asks -998 for sandboxes):
    # containerd then clamps scores at its own.
    restrict_oom_score_adj = true
    enable_cdi = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '$BIN/runc'
        Root = '$RUN/runc'
        SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/usr/lib/cni']
      conf_dir = '$CONF/net.d'
      use_internal_loopback = true

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'

  [plugins.'io.containerd.nri.v1.nri']
    disable = true
TOML

  cat >"$CONF/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 only; kubelet 1.35+ refuses it unless told.
failCgroupV1: false
# No systemd here: the kubelet and runc manage cgroupfs directly.
cgroupDriver: cgroupfs
cgroupRoot: /
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: 0.0.0.0
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
failSwapOn: false
# The images here cannot be pulled again (there is no registry): never
# garbage-collect them, and evict only when the machine is nearly full.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
serializeImagePulls: false
podLogsDir: $VAR/pod-logs
resolvConf: /etc/resolv.conf
YAML

  cat >"$CONF/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $CLUSTER_CIDR
clientConnection:
  kubeconfig: $PKI/kube-proxy.kubeconfig
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the machine's conntrack settings alone (zero means "do not set").
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
}

start_control_plane() {
  start etcd --name corescale --data-dir "$VAR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster corescale=http://127.0.0.1:2380 \
    --unsafe-no-fsync --log-level warn
  wait_until "etcd" 60 curl -fsS http://127.0.0.1:2379/health

  start kube-apiserver \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address 0.0.0.0 --secure-port "$API_PORT" --advertise-address "$NODE_IP" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultTolerationSeconds,Priority,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota,NodeRestriction,PodSecurity \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" \
    --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --allow-privileged=true --v 1
  wait_until "kube-apiserver to be ready" 120 kc get --raw /readyz

  # Client rates as a cluster of a few hundred nodes is run with: at the
  # default 20 requests/s the ReplicaSet controller alone needed 8 minutes
  # to create make bench-scale's 10,000 pods, and that, not the operator,
  # was the time measured.
  start kube-controller-manager \
    --kubeconfig "$PKI/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$PKI/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$PKI/controller-manager.kubeconfig" \
    --use-service-account-credentials \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --leader-elect=false --bind-address 127.0.0.1 --v 1 \
    --kube-api-qps 100 --kube-api-burst 200
  start kube-scheduler \
    --kubeconfig "$PKI/scheduler.kubeconfig" \
    --authentication-kubeconfig "$PKI/scheduler.kubeconfig" \
    --authorization-kubeconfig "$PKI/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --v 1 \
    --kube-api-qps 100 --kube-api-burst 200
}

# import_images: the sandbox and base images into containerd's k8s.io
# namespace, unless an earlier run left them in the (kept) image store.
import_images() {
  local have ref tar
  have=$(ctr_k8s images ls -q)
  for ref in "$PAUSE_IMAGE=pause" "$BASE_IMAGE_REF=base"; do
    tar=$IMAGES/${ref#*=}.tar
    ref=${ref%=*}
    grep -qxF "$ref" <<<"$have" && continue
    log "importing $ref into containerd"
    ctr_k8s images import "$tar" >/dev/null
  done
}

start_node() {
  start containerd --config "$CONF/containerd.toml"
  wait_until "containerd" 60 ctr --address "$CONTAINERD_SOCK" version
  # Pods that an earlier, crashed run left in containerd's store.
  crictl --runtime-endpoint "unix://$CONTAINERD_SOCK" rmp -af >/dev/null 2>&1 || true
  import_images
  start kubelet --config "$CONF/kubelet.yaml" --kubeconfig "$PKI/kubelet.kubeconfig" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --root-dir "$VAR/kubelet" --v 1
  start kube-proxy --config "$CONF/kube-proxy.yaml" --v 1
  wait_until "the node to register" 120 kc get node "$NODE_NAME"
  wait_until "the node to be Ready" 120 kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
}

# smoke_test: a pod behind a Service, called from the host through its
# ClusterIP, proves scheduling, the runtime, CNI and kube-proxy together.
smoke_test() {
  local ns=kube-system
  wait_until "the kube-system ServiceAccount" 60 kc -n "$ns" get serviceaccount default
  kc -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: corescale-smoke
  labels: {app: corescale-smoke}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: $BASE_IMAGE_REF
    imagePullPolicy: IfNotPresent
    command: [python3, -m, http.server, "8080"]
    resources: {requests: {cpu: 10m, memory: 16Mi}}
---
apiVersion: v1
kind: Service
metadata:
  name: corescale-smoke
spec:
  selector: {app: corescale-smoke}
  ports: [{port: 80, targetPort: 8080}]
YAML
  local ip
  ip=$(kc -n "$ns" get service corescale-smoke -o jsonpath='{.spec.clusterIP}')
  wait_until "Service $ip to route to a pod" 120 curl -fsS -m 2 "http://$ip/"
  kc -n "$ns" delete pod/corescale-smoke service/corescale-smoke --wait=false >/dev/null
  log "Service $ip routed to a pod"
}

# start_metrics_server: resource metrics (`kubectl top`, the HPA) from the
# kubelet, served to the API server as the aggregated API metrics.k8s.io.
start_metrics_server() {
  sed -e "s|@NODE_IP@|$NODE_IP|" -e "s|@CA_BUNDLE@|$(base64 -w0 "$PKI/ca.crt")|" \
    "$ROOT/hack/cluster/metrics-server.yaml" | kc apply -f - >/dev/null
  start metrics-server --kubeconfig "$PKI/metrics-server.kubeconfig" \
    --authentication-kubeconfig "$PKI/metrics-server.kubeconfig" \
    --authorization-kubeconfig "$PKI/metrics-server.kubeconfig" \
    --bind-address "$NODE_IP" --secure-port 4443 \
    --tls-cert-file "$PKI/metrics-server-serving.crt" \
    --tls-private-key-file "$PKI/metrics-server-serving.key" \
    --kubelet-preferred-address-types InternalIP --kubelet-certificate-authority "$PKI/ca.crt" \
    --metric-resolution 15s --v 1
  wait_until "the metrics.k8s.io API" 120 \
    kc wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=5s
}

# prometheus: a real Prometheus for the worker pods, on the host like the
# other components, so it reaches pod addresses directly. It finds pods with
# Kubernetes service discovery and scrapes those annotated the conventional
# way (prometheus.io/scrape, port, path). Its data is thrown away with the
# cluster's state; `make cluster-down` stops it.
prometheus() {
  healthy || die "the cluster is not running: make cluster first"
  if pid_of prometheus >/dev/null && curl -fsS "http://$PROMETHEUS_ADDRESS/-/ready" >/dev/null 2>&1; then
    log "prometheus already running on http://$PROMETHEUS_ADDRESS"
    return
  fi
  "$ROOT/hack/cluster/build.sh" prometheus
  mkdir -p "$VAR/prometheus"
  sed "s|@KUBECONFIG@|$KUBECONFIG_PATH|" "$ROOT/hack/cluster/prometheus.yaml" >"$CONF/prometheus.yaml"
  "$BIN/promtool" check config "$CONF/prometheus.yaml" >/dev/null
  start prometheus --config.file "$CONF/prometheus.yaml" --storage.tsdb.path "$VAR/prometheus" \
    --web.listen-address "$PROMETHEUS_ADDRESS" --log.level warn
  wait_until "prometheus to be ready" 60 curl -fsS "http://$PROMETHEUS_ADDRESS/-/ready"
  log "prometheus ready on http://$PROMETHEUS_ADDRESS"
}

# kwok: simulated nodes beside the real one. KWOK plays the kubelet of every
# node annotated kwok.x-k8s.io/node=fake, through the API server alone, by the
# stages in hack/cluster/kwok/: nodes are Ready at once, their pods Running
# and Ready without running anything, with addresses from KWOK_CIDR (outside
# the cluster's pod and Service ranges) so that EndpointSlices list them.
# KWOK renews each node's Lease (every quarter of its duration) only when
# given a lease duration: its own default is none, and then the node
# controller sees no heartbeat but the stage's status rewrite (minutes
# apart), marks every node NotReady 50 s (--node-monitor-grace-period) after
# the last one and its pods not ready, which KWOK never undoes. 40 s is the
# kubelet's nodeLeaseDurationSeconds.
KWOK_NODE_LEASE_SECONDS=40
KWOK_CIDR=10.248.0.0/16
KWOK_ADDRESS=127.0.0.1:10247
SIMULATED_TAINT=corescale.dev/simulated
POOL_LABEL=corescale.dev/pool
start_kwok() {
  healthy || die "the cluster is not running: make cluster first"
  if pid_of kwok >/dev/null && curl -fsS "http://$KWOK_ADDRESS/healthz" >/dev/null 2>&1; then
    return
  fi
  "$ROOT/hack/cluster/build.sh" kwok
  local configs
  configs=$(printf '%s,' "$ROOT"/hack/cluster/kwok/*.yaml)
  start kwok --kubeconfig "$KUBECONFIG_PATH" --config "${configs%,}" \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --cidr "$KWOK_CIDR" --node-ip "$NODE_IP" --server-address "$KWOK_ADDRESS" \
    --node-lease-duration-seconds "$KWOK_NODE_LEASE_SECONDS"
  wait_until "kwok to be ready" 60 curl -fsS "http://$KWOK_ADDRESS/healthz"
  log "kwok running (log: $LOGS/kwok.log)"
}

# simulated_node NAME ZONE POOL: a Node for KWOK with one CPU (the stage
# sets its capacity), its hostname and zone labels, and a taint that keeps
# every pod off it but those that tolerate corescale.dev/simulated.
simulated_node() {
  cat <<YAML
---
apiVersion: v1
kind: Node
metadata:
  name: $1
  annotations: {kwok.x-k8s.io/node: fake}
  labels:
    kubernetes.io/hostname: $1
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    topology.kubernetes.io/zone: $2
    $POOL_LABEL: $3
    type: kwok
spec:
  taints: [{key: $SIMULATED_TAINT, value: "true", effect: NoSchedule}]
YAML
}

# nodes [N [POOL]]: KWOK running; with N, pool POOL holds exactly nodes
# POOL-0..N-1, in zones zone-a, zone-b, zone-c in turn. Tests use a pool of
# their own and remove it (N=0) when they are done.
nodes() {
  start_kwok
  (($#)) || return 0
  local n=$1 pool=${2:-kwok} i zones=(zone-a zone-b zone-c) manifest="" name
  [[ $n =~ ^[0-9]+$ ]] || die "nodes: N must be a number, got '$n'"
  [[ $pool =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "nodes: POOL must be a DNS label, got '$pool'"
  for ((i = 0; i < n; i++)); do
    manifest+=$(simulated_node "$pool-$i" "${zones[i % 3]}" "$pool")$'\n'
  done
  if ((n)); then
    kc apply --server-side -f - >/dev/null <<<"$manifest"
  fi
  local extra=()
  for name in $(kc get nodes -l "$POOL_LABEL=$pool" -o name); do
    i=${name##*-}
    [[ $i =~ ^[0-9]+$ ]] && ((i < n)) || extra+=("$name")
  done
  ((${#extra[@]} == 0)) || kc delete --wait=false "${extra[@]}" >/dev/null
  if ((n)); then
    # Counted from one list: `kubectl wait` on many nodes waits for them one
    # by one, and at 100 nodes its --timeout ran out before it reached the
    # last, however Ready they all were.
    wait_until "$n nodes of pool $pool to be Ready" 300 pool_ready "$pool" "$n"
  fi
  log "pool $pool: $n simulated nodes (removed ${#extra[@]})"
}

# pool_ready POOL N: at least N nodes of the pool report Ready True.
pool_ready() {
  local ready
  ready=$(kc get nodes -l "$POOL_LABEL=$1" \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
  (($(grep -c '^True$' <<<"$ready" || true) >= $2))
}

# healthy: every component runs, the API server is ready, the node is Ready,
# and the last start finished (a start that failed half-way is redone).
healthy() {
  local c
  [[ -f $RUN/ready ]] || return 1
  for c in "${COMPONENTS[@]}"; do
    pid_of "$c" >/dev/null || return 1
  done
  kc get --raw /readyz >/dev/null 2>&1 || return 1
  [[ $(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

up() {
  if healthy; then
    log "already running"
  else
    local t0=$SECONDS
    # Everything this start says also goes to up.log, which the failure
    # message names: it exists before the first step that can fail.
    mkdir -p "$LOGS"
    : >"$LOGS/up.log"
    exec 2> >(tee -a "$LOGS/up.log" >&2)
    trap on_exit EXIT
    "$ROOT/hack/cluster/build.sh"
    "$ROOT/hack/images/build.sh"
    clean_all
    prepare_host
    make_pki
    cp "$PKI/admin.kubeconfig" "$KUBECONFIG_PATH"
    write_configs
    start_control_plane
    start_node
    smoke_test
    start_metrics_server
    touch "$RUN/ready"
    trap - EXIT
    log "cluster ready in $((SECONDS - t0))s; logs in $LOGS"
  fi
  printf 'export KUBECONFIG=%s\n' "$KUBECONFIG_PATH"
}

down() {
  # Remove pods through the CRI first, so CNI releases veths and addresses
  # the normal way; clean_all then catches whatever is left.
  if pid=$(pid_of kubelet); then
    stop_pid "$pid"
  fi
  if pid_of containerd >/dev/null; then
    timeout 60 crictl --runtime-endpoint "unix://$CONTAINERD_SOCK" rmp -af >/dev/null 2>&1 || true
  fi
  clean_all
  log "stopped; logs of the last run kept in $LOGS"
}

# lock: one start or stop at a time (tests, make and a person may race).
# start() closes the lock's descriptor so the components never hold it.
lock() {
  mkdir -p "$CS"
  exec 9>"$CS/lock"
  flock 9
}

case ${1:-} in
  up) lock && up ;;
  down) lock && down ;;
  status) healthy || exit 1 ;; # "not running" is an answer, not a failure
  kubeconfig) printf '%s\n' "$KUBECONFIG_PATH" ;;
  prometheus) lock && prometheus ;;
  nodes) lock && nodes "${@:2}" ;;
  *)
    echo "usage: $0 up|down|status|kubeconfig|prometheus|nodes [N [POOL]]" >&2
    exit 2
    ;;
esac
