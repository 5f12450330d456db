{{/* Names ---------------------------------------------------------------------------------- */}}

{{- define "gristmill.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name; the release name alone when it already contains the chart name. */}}
{{- define "gristmill.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>", kept within the 63 characters of a DNS label. */}}
{{- define "gristmill.componentName" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- printf "%s-%s" (include "gristmill.fullname" $root | trunc (int (sub 62 (len $suffix)))) $suffix | trimSuffix "-" -}}
{{- end -}}

{{- define "gristmill.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gristmill.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gristmill.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels ---------------------------------------------------------------------------------- */}}

{{- define "gristmill.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gristmill.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gristmill.labels" -}}
helm.sh/chart: {{ include "gristmill.chart" . }}
{{ include "gristmill.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gristmill
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component: (list $ "api"). */}}
{{- define "gristmill.componentLabels" -}}
{{- $root := index . 0 -}}
{{ include "gristmill.labels" $root }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "gristmill.componentSelectorLabels" -}}
{{- $root := index . 0 -}}
{{ include "gristmill.selectorLabels" $root }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Images ---------------------------------------------------------------------------------- */}}

{{/* The one Gristmill image of every gristmill container: repository@digest, or repository:tag
     (tag defaults to appVersion). Takes the root context. */}}
{{- define "gristmill.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* An in-chart dependency's image (redis.image, postgresql.image): repository:tag@digest when
     pinned (the runtime pulls by digest; the tag stays for readers), else repository:tag. */}}
{{- define "gristmill.pinnedImage" -}}
{{- if .digest -}}
{{- printf "%s:%s@%s" .repository .tag .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}

{{/* Config and secrets ---------------------------------------------------------------------- */}}

{{- define "gristmill.configMapName" -}}
{{- include "gristmill.componentName" (list . "config") -}}
{{- end -}}

{{- define "gristmill.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "gristmill.componentName" (list . "secrets") -}}
{{- end -}}
{{- end -}}

{{/* Development password used when an in-chart service's password is left empty: fixed, so
     rendering stays deterministic, and named so nobody mistakes it for a real one. */}}
{{- define "gristmill.devPassword" -}}
insecure-dev-password-change-me
{{- end -}}

{{- define "gristmill.postgresqlPassword" -}}
{{- default (include "gristmill.devPassword" .) .Values.postgresql.auth.password -}}
{{- end -}}

{{- define "gristmill.redisPassword" -}}
{{- default (include "gristmill.devPassword" .) .Values.redis.password -}}
{{- end -}}

{{- define "gristmill.postgresqlHost" -}}
{{- include "gristmill.componentName" (list . "postgresql") -}}
{{- end -}}

{{- define "gristmill.redisHost" -}}
{{- include "gristmill.componentName" (list . "redis") -}}
{{- end -}}

{{- define "gristmill.databaseUrl" -}}
{{- if .Values.secrets.databaseUrl -}}
{{- .Values.secrets.databaseUrl -}}
{{- else if .Values.postgresql.enabled -}}
{{- $a := .Values.postgresql.auth -}}
{{- printf "postgresql+psycopg://%s:%s@%s:5432/%s" (urlquery $a.username) (urlquery (include "gristmill.postgresqlPassword" .)) (include "gristmill.postgresqlHost" .) $a.database -}}
{{- else -}}
{{- fail "secrets.databaseUrl is required when postgresql.enabled is false and secrets.existingSecret is empty" -}}
{{- end -}}
{{- end -}}

{{- define "gristmill.redisUrl" -}}
{{- if .Values.secrets.redisUrl -}}
{{- .Values.secrets.redisUrl -}}
{{- else if .Values.redis.enabled -}}
{{- printf "redis://:%s@%s:6379/%d" (urlquery (include "gristmill.redisPassword" .)) (include "gristmill.redisHost" .) (int .Values.redis.database) -}}
{{- else -}}
{{- fail "secrets.redisUrl is required when redis.enabled is false and secrets.existingSecret is empty" -}}
{{- end -}}
{{- end -}}

{{/* A setting value as the string pods see: whole numbers without exponent, booleans lower-case. */}}
{{- define "gristmill.settingString" -}}
{{- if kindIs "float64" . -}}
{{- if eq (floor .) . -}}{{ printf "%d" (int64 .) }}{{- else -}}{{ toString . }}{{- end -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* Workers --------------------------------------------------------------------------------- */}}

{{/* Grace period of a pool: its shutdownTimeoutSeconds, or the longest hard time limit of the
     tasks on its queues + 30 s. Queue "low" carries backfills and maintenance, every other queue
     scrapes. (list $ $pool) */}}
{{- define "gristmill.worker.shutdownTimeout" -}}
{{- $root := index . 0 -}}
{{- $pool := index . 1 -}}
{{- if not (kindIs "invalid" $pool.shutdownTimeoutSeconds) -}}
{{- int $pool.shutdownTimeoutSeconds -}}
{{- else -}}
{{- $c := $root.Values.config -}}
{{- $longest := 0.0 -}}
{{- range $pool.queues -}}
{{- $limits := list $c.SCRAPE_HARD_TIME_LIMIT_SECONDS -}}
{{- if eq . "low" -}}
{{- $limits = list $c.BACKFILL_HARD_TIME_LIMIT_SECONDS $c.MAINTENANCE_HARD_TIME_LIMIT_SECONDS -}}
{{- end -}}
{{- range $limits -}}
{{- if gt (float64 .) $longest -}}{{- $longest = float64 . -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- add (int (ceil $longest)) 30 -}}
{{- end -}}
{{- end -}}

{{/* Pod-level pieces shared by the gristmill workloads -------------------------------------- */}}

{{/* envFrom for gristmill containers. */}}
{{- define "gristmill.envFrom" -}}
- configMapRef:
    name: {{ include "gristmill.configMapName" . }}
- secretRef:
    name: {{ include "gristmill.secretName" . }}
{{- end -}}

{{/* Environment every gristmill container gets on top of envFrom. */}}
{{- define "gristmill.commonEnv" -}}
- name: HOME
  value: /tmp
- name: TMPDIR
  value: /tmp
- name: PYTHONUNBUFFERED
  value: "1"
{{- end -}}

{{/* checksum annotations: pods roll when the ConfigMap or the chart's Secret changes. */}}
{{- define "gristmill.checksumAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end -}}

{{- define "gristmill.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* initContainer that waits until the database is reachable and migrated. Takes the root. */}}
{{- define "gristmill.waitForMigrations" -}}
{{- $root := . -}}
{{- if $root.Values.waitForMigrations.enabled }}
initContainers:
  - name: wait-for-db
    image: {{ include "gristmill.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args: ["gristmill", "wait-for-db", "--timeout", {{ $root.Values.waitForMigrations.timeoutSeconds | int | toString | quote }}]
    envFrom:
      {{- include "gristmill.envFrom" $root | nindent 6 }}
    env:
      {{- include "gristmill.commonEnv" $root | nindent 6 }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml $root.Values.waitForMigrations.resources | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
{{- end }}
{{- end -}}

{{- define "gristmill.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
{{- end -}}

{{/* Scheduling: (list $ $componentValues) - component settings win over the global ones. */}}
{{- define "gristmill.scheduling" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- with (default $root.Values.nodeSelector $c.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.tolerations $c.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.affinity $c.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/* Pod annotations: checksums + global + component. (list $ $componentValues) */}}
{{- define "gristmill.podAnnotations" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{ include "gristmill.checksumAnnotations" $root }}
{{- with $root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- with $c.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* imagePullSecrets, scheduling and (when $waitForDb) the wait-for-db initContainer, without
     blank lines when some are empty. (list $ $componentValues $waitForDb) */}}
{{- define "gristmill.podExtras" -}}
{{- $root := index . 0 -}}
{{- $parts := list (include "gristmill.imagePullSecrets" $root) (include "gristmill.scheduling" (list $root (index . 1))) -}}
{{- if index . 2 -}}
{{- $parts = append $parts (include "gristmill.waitForMigrations" $root) -}}
{{- end -}}
{{- range $parts -}}
{{- with trim . }}
{{ . }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Container securityContext of the in-chart Redis/PostgreSQL: the same hardening as the
     gristmill containers, with the image's own (non-root) uid. Takes the pod securityContext. */}}
{{- define "gristmill.dependencySecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* NetworkPolicyPeer selecting this release's pods of the given components. (list $ components) */}}
{{- define "gristmill.networkPolicy.appPeer" -}}
{{- $root := index . 0 -}}
- podSelector:
    matchExpressions:
      - key: app.kubernetes.io/instance
        operator: In
        values: [{{ $root.Release.Name | quote }}]
      - key: app.kubernetes.io/component
        operator: In
        values: [{{ range $i, $c := index . 1 }}{{ if $i }}, {{ end }}{{ $c | quote }}{{ end }}]
{{- end -}}

{{/* .Values.workers with each pool's omitted keys filled in, as JSON (use fromJsonArray).
     hasKey rather than merge: merge would replace an explicit 0 or false with the default. */}}
{{- define "gristmill.workerPools" -}}
{{- $defaults := dict "replicas" 1 "pool" "prefork" "shutdownTimeoutSeconds" nil "resources" (dict) -}}
{{- $scaling := dict "enabled" false "minReplicas" 1 "maxReplicas" 10 "targetQueueLength" 10 -}}
{{- $pools := list -}}
{{- range .Values.workers -}}
{{- $p := deepCopy . -}}
{{- range $k, $v := $defaults -}}
{{- if not (hasKey $p $k) }}{{ $_ := set $p $k $v }}{{ end -}}
{{- end -}}
{{- $a := deepCopy (default (dict) $p.autoscaling) -}}
{{- range $k, $v := $scaling -}}
{{- if not (hasKey $a $k) }}{{ $_ := set $a $k $v }}{{ end -}}
{{- end -}}
{{- $_ := set $p "autoscaling" $a -}}
{{- $pools = append $pools $p -}}
{{- end -}}
{{- toJson $pools -}}
{{- end -}}
