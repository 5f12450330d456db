{{/* Hook events of the migration Job: the in-chart database only exists after install. */}}
{{- define "gristmill.migrations.hookEvents" -}}
{{- if .Values.postgresql.enabled -}}
post-install,pre-upgrade
{{- else -}}
pre-install,pre-upgrade
{{- end -}}
{{- end -}}

{{/* envFrom, env, security and mounts of the migration containers. */}}
{{- define "gristmill.migrations.containerCommon" -}}
{{- $m := .Values.migrations -}}
envFrom:
{{- if $m.useHelmHooks }}
  - configMapRef:
      name: {{ include "gristmill.componentName" (list . "migrate-config") }}
  - secretRef:
      {{- if .Values.secrets.existingSecret }}
      name: {{ .Values.secrets.existingSecret }}
      {{- else }}
      name: {{ include "gristmill.componentName" (list . "migrate-secrets") }}
      {{- end }}
{{- else }}
  {{- include "gristmill.envFrom" . | nindent 2 }}
{{- end }}
env:
  {{- include "gristmill.commonEnv" . | nindent 2 }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with $m.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
resources:
  {{- toYaml $m.resources | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end -}}
