# Certificates and kubeconfigs of the local cluster: one CA signs the API
# server's and kubelet's serving certificates and every client certificate;
# a separate key signs service-account tokens. ECDSA P-256 keys are used
# because they are generated in milliseconds, which keeps a first start fast.
# shellcheck shell=bash

# Bump when make_pki issues other certificates, so that a kept set is redone.
PKI_RECIPE=2

# ca NAME SUBJECT: a self-signed certificate authority.
ca() {
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$PKI/$1.key" -out "$PKI/$1.crt" -days 3650 -subj "$2" \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}

# leaf NAME SUBJECT EXTENSIONS [CA]: a key and a certificate signed by CA
# (the cluster's CA by default).
leaf() {
  local name=$1 subject=$2 ext=$3 ca=${4:-ca}
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
    -CAcreateserial -days 3650 -extfile <(printf '%s\n' "$ext") -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr"
}

client_ext='keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'

serving_ext() {
  printf 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$1"
}

# kubeconfig NAME USER: a self-contained kubeconfig (certificates embedded)
# for the client certificate NAME.
kubeconfig() {
  local name=$1 user=$2
  cat >"$PKI/$name.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: corescale
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$name.crt")
    client-key-data: $(base64 -w0 "$PKI/$name.key")
contexts:
- name: corescale
  context:
    cluster: corescale
    user: $user
current-context: corescale
YAML
}

# make_pki: creates whatever is missing; an existing set is reused, so warm
# starts skip this and old kubeconfigs keep working.
make_pki() {
  [[ -f $PKI/complete && $(cat "$PKI/complete") == "$PKI_RECIPE" ]] && return 0
  rm -rf "$PKI"
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  log "creating certificates in $PKI"
  ca ca /CN=corescale-ca
  # The aggregation layer's own CA: the API server proves with a certificate
  # of it that a request it forwards to metrics-server is authenticated, and
  # no ordinary client certificate of the cluster's CA can claim that.
  ca front-proxy-ca /CN=corescale-front-proxy-ca
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/sa.key" 2>/dev/null
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null

  leaf apiserver /CN=kube-apiserver "$(serving_ext "IP:127.0.0.1,IP:$NODE_IP,IP:$API_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")"
  leaf kubelet-serving "/CN=$NODE_NAME" "$(serving_ext "IP:127.0.0.1,IP:$NODE_IP,DNS:$NODE_NAME")"
  # The API server's client identity towards kubelets (logs, exec).
  leaf apiserver-kubelet-client /O=system:masters/CN=kube-apiserver-kubelet-client "$client_ext"
  leaf admin /O=system:masters/CN=corescale-admin "$client_ext"
  leaf controller-manager /CN=system:kube-controller-manager "$client_ext"
  leaf scheduler /CN=system:kube-scheduler "$client_ext"
  leaf kube-proxy /CN=system:kube-proxy "$client_ext"
  # The Node authorizer and NodeRestriction admission know the kubelet by
  # this exact identity.
  leaf kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client_ext"
  leaf front-proxy-client /CN=front-proxy-client "$client_ext" front-proxy-ca
  leaf metrics-server-serving /CN=metrics-server "$(serving_ext "IP:$NODE_IP,DNS:metrics-server.kube-system.svc")"
  leaf metrics-server /CN=system:metrics-server "$client_ext"

  kubeconfig admin corescale-admin
  kubeconfig controller-manager system:kube-controller-manager
  kubeconfig scheduler system:kube-scheduler
  kubeconfig kube-proxy system:kube-proxy
  kubeconfig kubelet "system:node:$NODE_NAME"
  kubeconfig metrics-server system:metrics-server
  printf '%s\n' "$PKI_RECIPE" >"$PKI/complete"
}
