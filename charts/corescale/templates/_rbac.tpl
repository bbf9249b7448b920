{{/*
What the operator does inside a watched namespace. manifests/rbac/ holds the
same rules for `kubectl apply -k`; a unit test keeps the two identical.
*/}}
{{- define "corescale.namespacedRules" -}}
# CoreClusters: kopf lists and watches them to reconcile, and patches them to
# record its progress (annotations, finalizer).
- apiGroups: ["corescale.io"]
  resources: ["coreclusters"]
  verbs: ["get", "list", "watch", "patch", "update"]
# The status subresource: replicas, readyReplicas, selector and conditions.
- apiGroups: ["corescale.io"]
  resources: ["coreclusters/status"]
  verbs: ["get", "patch", "update"]
# The children of a CoreCluster: created, kept as specified (drift is put
# back) and deleted when no longer wanted (a mode switch).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# Worker pods are only read: their readiness and metrics feed the status;
# the Deployment owns them.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# The EndpointSlices of a CoreCluster's Service are only read: Ready waits
# until they list every ready pod.
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch"]
# Events on the CoreCluster for every action the operator takes.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# kopf's peering object of a namespace-scoped operator (KopfPeering): the
# operator creates it at startup, then every instance announces itself there
# so that only one of them is active.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- end }}

{{/*
Cluster-scoped reads (and the cluster-wide peering object), bound in both
scopes.
*/}}
{{- define "corescale.clusterRules" -}}
# kopf watches CRDs to notice when the CoreCluster CRD is (re)installed.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
# A namespace-scoped kopf lists and watches namespaces to learn which of the
# watched ones exist.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- if not .Values.watchNamespaces }}
# kopf's peering object of a cluster-wide operator (ClusterKopfPeering),
# created by the operator at startup like the namespaced one.
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- end }}
{{- end }}
