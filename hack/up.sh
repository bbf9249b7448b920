#!/usr/bin/env bash
# `make up`: from a fresh clone to a serving CoreCluster in one command.
#   1. the cluster: the current kube context if its API server answers,
#      otherwise the local cluster (hack/cluster.sh up, built on first use);
#   2. the images corescale-worker:dev and corescale-operator:dev, built and
#      loaded where that cluster finds them;
#   3. the operator, installed or upgraded with the Helm chart;
#   4. the example CoreCluster (manifests/cluster.yaml), waited for until
#      Ready, then how to reach it, follow the log, and tear it all down.
# `make down` (hack/up.sh down) removes what `make up` installed; the
# cluster itself stays (`make cluster-down` stops the local one).
#
# Settings (environment):
#   CORESCALE_NAMESPACE  namespace of the example CoreCluster (default: default)
#   CORESCALE_IMAGE      an operator image the cluster can pull, instead of
#                        building corescale-operator:dev (needed for a
#                        context that is neither the local cluster nor kind)
#   CORESCALE_WORKER_IMAGE  likewise the workers' image (corescale-worker:dev)
#   CORESCALE_HELM_ARGS  extra arguments for `helm upgrade --install`
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LOG_TAG=up

RELEASE=corescale
OPERATOR_NS=corescale-system
EXAMPLE_NS=${CORESCALE_NAMESPACE:-default}
EXAMPLE=hello
CHART=$ROOT/charts/corescale
READY_TIMEOUT=${CORESCALE_READY_TIMEOUT:-300s}
mkdir -p "$BIN"
export PATH=$BIN:$PATH

# api_answers: true when kubectl has a current context whose API server says
# it is ready. A missing kubeconfig must not fall back to localhost:8080, so
# the context is checked first.
api_answers() {
  command -v kubectl >/dev/null || return 1
  kubectl config current-context >/dev/null 2>&1 || return 1
  kubectl get --raw=/readyz --request-timeout=5s >/dev/null 2>&1
}

# is_local_cluster: true when the current context talks to the local cluster
# (someone exported its KUBECONFIG), whose node takes images from hack/image.sh.
is_local_cluster() {
  "$ROOT/hack/cluster.sh" status >/dev/null 2>&1 || return 1
  local server='{.clusters[0].cluster.server}' local_kubeconfig
  local_kubeconfig=$("$ROOT/hack/cluster.sh" kubeconfig)
  [[ $(kubectl config view --minify -o jsonpath="$server") == \
    "$(kubectl --kubeconfig "$local_kubeconfig" config view --minify -o jsonpath="$server")" ]]
}

# use_cluster: points KUBECONFIG at the cluster to install into and sets
# LOCAL=1 when that is the local cluster.
use_cluster() {
  LOCAL=0
  if api_answers; then
    log "using the current context $(kubectl config current-context)"
    is_local_cluster && LOCAL=1
    return
  fi
  log "no current context answers; starting the local cluster (hack/cluster.sh up)"
  "$ROOT/hack/cluster.sh" up
  KUBECONFIG=$("$ROOT/hack/cluster.sh" kubeconfig)
  export KUBECONFIG
  LOCAL=1
}

# need_helm: helm from PATH or the cache; the local cluster's build puts it
# there, and for any other cluster the same build makes helm alone at the
# pinned version from the Go module proxy, never downloaded as a release.
need_helm() {
  command -v helm >/dev/null && return
  "$ROOT/hack/cluster/build.sh" helm
}

# load_image: builds and loads the images, and sets IMAGE_VALUES to the Helm
# arguments that make the operator and the workers run them.
load_image() {
  IMAGE_VALUES=()
  if [[ -n ${CORESCALE_IMAGE:-} ]]; then
    log "using the operator image $CORESCALE_IMAGE (CORESCALE_IMAGE)"
    IMAGE_VALUES=(--set "image.repository=${CORESCALE_IMAGE%:*}" --set "image.tag=${CORESCALE_IMAGE##*:}")
    if [[ -n ${CORESCALE_WORKER_IMAGE:-} ]]; then
      IMAGE_VALUES+=(--set "workerImage=$CORESCALE_WORKER_IMAGE")
    fi
    return
  fi
  local context target
  context=$(kubectl config current-context)
  if ((LOCAL)); then
    "$ROOT/hack/image.sh"
  elif [[ $context == kind-* ]] && command -v kind >/dev/null && command -v docker >/dev/null; then
    for target in worker operator; do
      log "building corescale-$target:dev with docker and loading it into kind cluster ${context#kind-}"
      docker build --target "$target" -t "corescale-$target:dev" "$ROOT"
      kind load docker-image "corescale-$target:dev" --name "${context#kind-}"
    done
  else
    die "cannot load an image into context $context: push one the cluster can pull and set CORESCALE_IMAGE=repository:tag"
  fi
}

# adopt_crds: the chart owns the CRDs, but they may exist already (applied by
# `kubectl apply -k manifests/`, or kept by an uninstalled release). Helm
# installs over an object only when it carries the release's ownership
# marks, so CRDs without a living owner are marked; CRDs of another installed
# release are left alone (helm then fails and says so).
adopt_crds() {
  local crd found owner owner_ns
  for crd in $(kubectl create --dry-run=client -k "$ROOT/manifests/crd" -o name); do
    crd=${crd#*/}
    found=$(kubectl get crd "$crd" --ignore-not-found -o name)
    [[ -n $found ]] || continue
    owner=$(kubectl get crd "$crd" -o jsonpath='{.metadata.annotations.meta\.helm\.sh/release-name}')
    owner_ns=$(kubectl get crd "$crd" -o jsonpath='{.metadata.annotations.meta\.helm\.sh/release-namespace}')
    [[ $owner == "$RELEASE" && $owner_ns == "$OPERATOR_NS" ]] && continue
    if [[ -n $owner ]] && helm status "$owner" -n "$owner_ns" >/dev/null 2>&1; then
      continue
    fi
    log "adopting the existing CRD $crd into release $RELEASE"
    kubectl label crd "$crd" --overwrite app.kubernetes.io/managed-by=Helm >/dev/null
    kubectl annotate crd "$crd" --overwrite meta.helm.sh/release-name=$RELEASE \
      meta.helm.sh/release-namespace=$OPERATOR_NS >/dev/null
  done
}

up() {
  local t0=$SECONDS
  use_cluster
  need_helm
  load_image

  # The operator's namespace enforces the restricted Pod Security level; it
  # comes from the same file `kubectl apply -k manifests/` uses.
  kubectl apply -f "$ROOT/manifests/manager/namespace.yaml" >/dev/null
  adopt_crds
  log "installing the operator: helm upgrade --install $RELEASE -n $OPERATOR_NS"
  # shellcheck disable=SC2086 # CORESCALE_HELM_ARGS is a list of arguments
  helm upgrade --install "$RELEASE" "$CHART" --namespace "$OPERATOR_NS" \
    "${IMAGE_VALUES[@]}" ${CORESCALE_HELM_ARGS:-} --wait --timeout 5m >/dev/null
  # --wait on a Recreate Deployment returns once the pod is ready; a rollout
  # that replaced the image is confirmed explicitly.
  kubectl -n "$OPERATOR_NS" rollout status "deployment/$RELEASE-operator" --timeout=5m >&2

  log "applying the example CoreCluster $EXAMPLE in namespace $EXAMPLE_NS"
  kubectl get namespace "$EXAMPLE_NS" >/dev/null 2>&1 || kubectl create namespace "$EXAMPLE_NS" >/dev/null
  kubectl -n "$EXAMPLE_NS" apply -f "$ROOT/manifests/cluster.yaml" >/dev/null
  if ! kubectl -n "$EXAMPLE_NS" wait --for=condition=Ready "corecluster/$EXAMPLE" \
    --timeout="$READY_TIMEOUT" >/dev/null; then
    kubectl -n "$EXAMPLE_NS" describe "corecluster/$EXAMPLE" >&2 || true
    kubectl -n "$OPERATOR_NS" logs "deployment/$RELEASE-operator" --tail=40 >&2 || true
    die "corecluster/$EXAMPLE did not become Ready within $READY_TIMEOUT"
  fi
  kubectl -n "$EXAMPLE_NS" get "corecluster/$EXAMPLE"
  report $((SECONDS - t0))
}

# report SECONDS: how to reach the example, follow the log and tear down.
report() {
  local ip port ns_flag="" answer=""
  [[ $EXAMPLE_NS == default ]] || ns_flag=" -n $EXAMPLE_NS"
  ip=$(kubectl -n "$EXAMPLE_NS" get "service/$EXAMPLE" -o jsonpath='{.spec.clusterIP}')
  port=$(kubectl -n "$EXAMPLE_NS" get "service/$EXAMPLE" -o jsonpath='{.spec.ports[0].port}')
  # The local cluster's kube-proxy runs on this host, so the Service's
  # ClusterIP answers here; elsewhere only port-forward does.
  # Ready means the EndpointSlices list the pods; kube-proxy programs the
  # ClusterIP a moment later (docs/operator.md), so the first try may be
  # refused.
  local tries=10
  if ((LOCAL)) && command -v curl >/dev/null; then
    while ((tries--)); do
      answer=$(curl -fsS --max-time 2 "http://$ip:$port/" 2>/dev/null || true)
      [[ -z $answer ]] || break
      sleep 0.5
    done
  fi
  cat <<EOF

corescale is up (took ${1}s). corecluster/$EXAMPLE is Ready in namespace $EXAMPLE_NS.

In a new shell, first (the kubectl and helm built for this cluster, which
may be newer than the ones already on this machine's PATH):
  export PATH=$BIN:\$PATH
EOF
  if ((LOCAL)); then
    printf '  export KUBECONFIG=%s\n' "$KUBECONFIG"
  fi
  cat <<EOF
Reach it:
EOF
  if [[ -n $answer ]]; then
    printf '  curl http://%s:%s/        # the Service, from this host (answered: %s)\n' \
      "$ip" "$port" "${answer%%$'\n'*}"
  fi
  cat <<EOF
  kubectl$ns_flag port-forward service/$EXAMPLE 8080:$port &
  curl http://127.0.0.1:8080/
Scale it:
  kubectl$ns_flag scale corecluster/$EXAMPLE --replicas=4
Follow the operator's log:
  kubectl -n $OPERATOR_NS logs -f deployment/$RELEASE-operator
Tear it down:
  make down            # the example and the operator; the cluster stays
EOF
  if ((LOCAL)); then
    echo "  make cluster-down    # stop the local cluster as well"
  fi
}

down() {
  # The cluster `make up` chose: the current context if it answers,
  # otherwise the local cluster if it runs.
  if api_answers; then
    log "using the current context $(kubectl config current-context)"
  elif "$ROOT/hack/cluster.sh" status >/dev/null 2>&1; then
    KUBECONFIG=$("$ROOT/hack/cluster.sh" kubeconfig)
    export KUBECONFIG
  else
    log "no cluster answers: nothing to remove"
    return
  fi
  # The example goes first, while the operator still runs to let it go.
  kubectl -n "$EXAMPLE_NS" delete -f "$ROOT/manifests/cluster.yaml" --ignore-not-found --wait=true \
    --timeout=2m >/dev/null || log "the example could not be deleted cleanly"
  if command -v helm >/dev/null && helm status "$RELEASE" -n "$OPERATOR_NS" >/dev/null 2>&1; then
    helm uninstall "$RELEASE" -n "$OPERATOR_NS" --wait --timeout 2m >/dev/null
    log "uninstalled release $RELEASE (the CRDs stay: crds.keep)"
  fi
  kubectl delete namespace "$OPERATOR_NS" --ignore-not-found --wait=false >/dev/null
  log "removed the example and the operator"
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  *) die "usage: $0 [up|down]" ;;
esac
