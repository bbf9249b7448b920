{{/*
Name of the chart, or nameOverride. Kubernetes names are limited to 63
characters, so every generated name is cut there.
*/}}
{{- define "corescale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name. A release whose name already contains the chart
name ("corescale") is not repeated, so `helm install corescale` gives the same
names as manifests/ (corescale-operator).
*/}}
{{- define "corescale.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of the operator's Deployment, ServiceAccount and RBAC objects.
*/}}
{{- define "corescale.operatorName" -}}
{{- printf "%s-operator" (include "corescale.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "corescale.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "corescale.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Labels that select the operator's pod. They never change across upgrades,
because a Deployment's selector is immutable.
*/}}
{{- define "corescale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "corescale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Labels of every object: the recommended app.kubernetes.io set, plus the
user's extraLabels.
*/}}
{{- define "corescale.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "corescale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: corescale
{{- with .Values.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The operator's image reference.
*/}}
{{- define "corescale.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}
