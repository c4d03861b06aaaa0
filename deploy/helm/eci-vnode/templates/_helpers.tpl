{{- define "eci-vnode.name" -}}{{ .Release.Name }}{{- end -}}
{{- define "eci-vnode.labels" -}}
app.kubernetes.io/name: eci-vnode
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "eci-vnode.selector" -}}
app.kubernetes.io/name: eci-vnode
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "eci-vnode.secret" -}}{{ .Values.eci.existingSecret | default (include "eci-vnode.name" .) }}{{- end -}}
