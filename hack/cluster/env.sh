# Layout and addresses of the local cluster, shared by hack/cluster.sh and
# its helpers. Sourced after hack/lib.sh.
# shellcheck shell=bash
# Its variables are used by the scripts that source it:
# shellcheck disable=SC2034

CS=$CORESCALE_CACHE/cluster
# Kept between runs: certificates (regenerated when missing), containerd's
# image store (the imported images survive `make cluster-down`), the logs of
# the last run (for reading after a failure) and the kubeconfig.
PKI=$CS/pki
CONTAINERD_ROOT=$CS/containerd
LOGS=$CS/logs
KUBECONFIG_PATH=$CS/kubeconfig
# Wiped by every start and stop: etcd's data, the kubelet's pods, pod logs,
# generated configuration, and run state (pid files, sockets, containerd's
# task state, pod network namespaces).
VAR=$CS/var
CONF=$CS/conf
RUN=/run/corescale
CONTAINERD_SOCK=$RUN/containerd/containerd.sock

NODE_NAME=corescale-node
# The node's address lives on an interface of our own (a bridge with no
# ports): pods reach the API server there through the kubernetes Service,
# whatever the machine's real networks are, and Service addresses without a
# rule end on that interface instead of leaving through eth0.
NODE_IF=cs-node0
NODE_IP=10.245.0.1
BRIDGE=cs-br0
POD_CIDR=10.244.0.0/24
POD_GATEWAY=10.244.0.1
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
API_PORT=6443
PROMETHEUS_ADDRESS=127.0.0.1:9090

# Host processes of the cluster, in start order; stopped in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy
  metrics-server)

# ctr_k8s ARGS...: ctr on the node's containerd, in the namespace the CRI
# uses. ctr warns on every call that cgroup v1 is deprecated; that line is
# dropped, every other message is kept.
ctr_k8s() {
  local err rc=0
  err=$(mktemp)
  ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@" 2>"$err" || rc=$?
  grep -v 'DEPRECATION: The support for cgroup v1' "$err" >&2 || true
  rm -f "$err"
  return "$rc"
}
