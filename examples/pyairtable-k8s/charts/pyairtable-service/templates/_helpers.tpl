{{/* The service's entry of .Values.services; fails the render when unknown. */}}
{{- define "svc.spec" -}}
{{- $s := required "set service=NAME" .Values.service -}}
{{- toYaml (required (printf "service %q is not in values/services.yaml" $s) (index .Values.services $s)) -}}
{{- end -}}

{{- define "svc.labels" -}}
app.kubernetes.io/name: {{ .Values.service }}
app.kubernetes.io/part-of: pyairtable
pyairtable/colour: {{ .Values.colour }}
{{- end -}}
