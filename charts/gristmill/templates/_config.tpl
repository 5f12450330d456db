{{/* Data of the settings ConfigMap (shared with the migration hook's copy). */}}
{{- define "gristmill.configData" -}}
{{- range $key, $value := .Values.config }}
{{ $key }}: {{ include "gristmill.settingString" $value | quote }}
{{- end }}
{{- range $key, $value := .Values.extraConfig }}
{{ $key }}: {{ include "gristmill.settingString" $value | quote }}
{{- end }}
BEAT_SCHEDULE_FILE: {{ .Values.scheduler.scheduleFile | quote }}
BEAT_HEARTBEAT_FILE: {{ .Values.scheduler.heartbeatFile | quote }}
WORKER_HEARTBEAT_FILE: {{ .Values.worker.heartbeatFile | quote }}
WORKER_METRICS_PORT: {{ .Values.worker.metricsPort | int | toString | quote }}
SCHEDULER_METRICS_PORT: {{ .Values.scheduler.metricsPort | int | toString | quote }}
{{- end -}}

{{/* Data of the chart's Secret (shared with the migration hook's copy). */}}
{{- define "gristmill.secretData" -}}
{{- $s := .Values.secrets -}}
{{- $databaseUrl := include "gristmill.databaseUrl" . -}}
DATABASE_URL: {{ $databaseUrl | quote }}
REDIS_URL: {{ include "gristmill.redisUrl" . | quote }}
{{- with $s.celeryBrokerUrl }}
CELERY_BROKER_URL: {{ . | quote }}
{{- end }}
{{- with $s.celeryResultBackend }}
CELERY_RESULT_BACKEND: {{ . | quote }}
{{- end }}
API_TOKENS: {{ $s.apiTokens | quote }}
API_READ_TOKENS: {{ $s.apiReadTokens | quote }}
{{- if .Values.postgresql.enabled }}
POSTGRES_PASSWORD: {{ include "gristmill.postgresqlPassword" . | quote }}
{{- end }}
{{- if .Values.redis.enabled }}
REDIS_PASSWORD: {{ include "gristmill.redisPassword" . | quote }}
{{- end }}
{{- if .Values.flower.enabled }}
FLOWER_BASIC_AUTH: {{ required "flower.basicAuth (user:password) is required when flower.enabled and secrets.existingSecret is empty" .Values.flower.basicAuth | quote }}
{{- end }}
{{- if and (include "gristmill.kedaEnabled" .) (eq .Values.keda.trigger "postgresql") }}
{{ .Values.keda.postgresql.connectionSecretKey }}: {{ regexReplaceAll "^postgresql\\+[a-z0-9]+://" $databaseUrl "postgresql://" | quote }}
{{- end }}
{{- end -}}

{{/* "true" when at least one worker pool autoscales with KEDA. */}}
{{- define "gristmill.kedaEnabled" -}}
{{- range include "gristmill.workerPools" . | fromJsonArray }}{{ if .autoscaling.enabled }}true{{ end }}{{ end -}}
{{- end -}}
