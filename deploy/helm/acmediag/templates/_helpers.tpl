{{/* The release's name for every object: the release, with the chart's name unless it holds it. */}}
{{- define "acmediag.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "acmediag.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "acmediag.labels" -}}
{{ include "acmediag.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "acmediag.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "acmediag.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The daemon's config.yaml: the user's config with the chart's listen
address and cluster mode on: the pods elect a leader with a Lease named
after the release in its namespace, and find their peers through the
release's headless Service; the cert-manager watch as certManager.watch
says. Keys the user sets under config.cluster and config.kube win. */}}
{{- define "acmediag.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $_ := set $config "listen" (printf ":%d" (int .Values.port)) -}}
{{- $r := .Values.api.reprobe -}}
{{- $reprobe := dict "enabled" $r.enabled "rate" $r.rate "burst" (int $r.burst) -}}
{{- if $r.tokenSecret.name -}}
{{- $_ := set $reprobe "token_file" "/var/run/secrets/acmediag/reprobe/token" -}}
{{- end -}}
{{- $api := deepCopy (default (dict) $config.api) -}}
{{- $_ := set $api "reprobe" $reprobe -}}
{{- $_ := set $config "api" $api -}}
{{- $name := include "acmediag.fullname" . -}}
{{- $cluster := dict "enabled" true "namespace" .Release.Namespace "lease_name" $name "service" $name -}}
{{- $_ := set $config "cluster" (merge (deepCopy (default dict $config.cluster)) $cluster) -}}
{{- $kube := dict "enabled" .Values.certManager.watch -}}
{{- $_ := set $config "kube" (merge (deepCopy (default dict $config.kube)) $kube) -}}
{{ toYaml $config }}
{{- end -}}
