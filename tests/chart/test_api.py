"""api: Deployment, Service, Ingress, HPA, PDB."""

from __future__ import annotations

from .helpers import EVERYTHING_ON, by_kind, containers, env_value, get, render_chart


def test_api_deployment_runs_the_procfile_command_on_port_8000(default_docs):
    deployment = get(default_docs, "Deployment", "gristmill-api")
    api = containers(deployment)["api"]
    assert "command" not in api, "command would replace the image's tini entrypoint"
    assert api["args"] == [
        "uvicorn",
        "services.api.app:create_app",
        "--factory",
        "--host",
        "0.0.0.0",
        "--port",
        "$(PORT)",
        "--no-access-log",
    ]
    assert env_value(api, "PORT") == "8000"
    assert api["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert deployment["spec"]["replicas"] == 2


def test_api_probes(default_docs):
    api = containers(get(default_docs, "Deployment", "gristmill-api"))["api"]
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_api_waits_for_the_schema(default_docs):
    init = containers(get(default_docs, "Deployment", "gristmill-api"))["wait-for-db"]
    assert init["args"] == ["gristmill", "wait-for-db", "--timeout", "300"]


def test_api_service_exposes_http_8000(default_docs):
    service = get(default_docs, "Service", "gristmill-api")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]
    deployment = get(default_docs, "Deployment", "gristmill-api")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_optional_api_objects_are_off_by_default(default_docs):
    assert not by_kind(default_docs, "Ingress")
    assert not by_kind(default_docs, "HorizontalPodAutoscaler")


def test_ingress_with_class_hosts_and_tls():
    docs = render_chart(EVERYTHING_ON)
    ingress = get(docs, "Ingress", "gristmill-api")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["gristmill.example.com"], "secretName": "gristmill-tls"}
    ]
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "gristmill.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "gristmill-api", "port": {"name": "http"}}


def test_hpa_takes_over_replicas():
    docs = render_chart(EVERYTHING_ON)
    hpa = get(docs, "HorizontalPodAutoscaler", "gristmill-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gristmill-api"
    assert hpa["spec"]["minReplicas"] == 2
    assert "replicas" not in get(docs, "Deployment", "gristmill-api")["spec"]


def test_api_pdb_selects_api_pods(default_docs):
    pdb = get(default_docs, "PodDisruptionBudget", "gristmill-api")
    assert pdb["spec"]["maxUnavailable"] == 1
    labels = get(default_docs, "Deployment", "gristmill-api")["spec"]["template"]["metadata"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels["labels"].items()


def test_nodeport_for_kind():
    docs = render_chart({"api": {"service": {"type": "NodePort", "nodePort": 30800}}})
    port = get(docs, "Service", "gristmill-api")["spec"]["ports"][0]
    assert port["nodePort"] == 30800
