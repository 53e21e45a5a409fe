{{/* Names and labels, as `helm create` lays them out. */}}
{{- define "ecg-gateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ecg-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ecg-gateway.labels" -}}
{{ include "ecg-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Combinations of values that cannot work, refused with the keys that conflict. */}}
{{- define "ecg-gateway.checkValues" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.store.postgresql.url) -}}
{{- fail "replicaCount > 1 needs store.postgresql.url: the SQLite store is one node's file" -}}
{{- end -}}
{{- if and .Values.admin.exposed (not .Values.admin.tokenSecret.name) -}}
{{- fail "admin.exposed: true needs admin.tokenSecret.name: beyond localhost the admin endpoint requires a token" -}}
{{- end -}}
{{- if and .Values.admin.exposed (not .Values.admin.tlsSecret.name) -}}
{{- fail "admin.exposed: true needs admin.tlsSecret.name: beyond localhost the admin endpoint requires TLS" -}}
{{- end -}}
{{- end -}}

{{- define "ecg-gateway.dicomPort" -}}
{{- .Values.gateway.port | default 11112 -}}
{{- end -}}

{{/* gateway.yaml: the values' gateway settings, with the keys the chart owns set by it. */}}
{{- define "ecg-gateway.gatewayYaml" -}}
{{- $owned := dict "data_dir" "/var/lib/ecg-gateway" "routes" "/etc/ecg-gateway/routes.yaml" -}}
{{- $admin := dict "port" .Values.admin.port "bind" (ternary "0.0.0.0" "127.0.0.1" .Values.admin.exposed) -}}
{{- if .Values.admin.exposed -}}
{{- $_ := set $admin "token_file" "/run/secrets/ecg-gateway-admin/token" -}}
{{- $tls := dict "enabled" true "cert" "/run/secrets/ecg-gateway-admin-tls/tls.crt" "key" "/run/secrets/ecg-gateway-admin-tls/tls.key" -}}
{{- $_ := set $admin "tls" $tls -}}
{{- end -}}
{{- $_ := set $owned "admin" $admin -}}
{{- if .Values.store.postgresql.url -}}
{{- $_ := set $owned "store" .Values.store.postgresql.url -}}
{{- end -}}
{{- toYaml (merge $owned (deepCopy .Values.gateway)) -}}
{{- end -}}

{{- define "ecg-gateway.probe" -}}
exec:
  command: ["python3", "/usr/local/bin/ecg-gateway-healthcheck", {{ . | quote }}]
{{- end -}}

{{- define "ecg-gateway.env" -}}
- {name: ECG_GATEWAY_CONFIG, value: /etc/ecg-gateway/gateway.yaml}
- {name: ECG_GATEWAY_DATA_DIR, value: /var/lib/ecg-gateway}
- {name: ECG_GATEWAY_ADMIN_PORT, value: {{ .Values.admin.port | quote }}}
- {name: HF_HOME, value: /var/lib/ecg-gateway/hf-cache}
{{- if .Values.admin.exposed }}
- {name: ECG_GATEWAY_ADMIN_TOKEN_FILE, value: /run/secrets/ecg-gateway-admin/token}
- {name: ECG_GATEWAY_ADMIN_TLS, value: "1"}
{{- end }}
{{- with .Values.store.postgresql.passwordSecret }}
{{- if .name }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .name }}, key: {{ .key }}}
{{- end }}
{{- end }}
{{- end -}}

{{- define "ecg-gateway.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
