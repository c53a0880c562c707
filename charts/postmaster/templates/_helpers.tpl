{{- define "postmaster.name" -}}postmaster{{- end -}}
{{- define "postmaster.labels" -}}
app.kubernetes.io/name: postmaster
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "postmaster.selector" -}}
app.kubernetes.io/name: postmaster
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
