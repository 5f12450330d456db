"""ConfigMap, Secret, existingSecret and checksum annotations."""

from __future__ import annotations

import pytest

from .helpers import (
    EXTERNAL_EXISTING_SECRET,
    by_kind,
    containers,
    get,
    render_chart,
    workloads,
)
from .pods import command_line, resolve_env

APP_DEPLOYMENTS = ("api", "worker-high", "worker-default", "worker-low", "scheduler")


def _pod_annotations(docs, name):
    return get(docs, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]


def test_configmap_holds_the_plain_settings_as_strings(default_docs):
    data = get(default_docs, "ConfigMap", "config")["data"]
    assert data["SCRAPE_HARD_TIME_LIMIT_SECONDS"] == "360"
    assert data["BACKFILL_HARD_TIME_LIMIT_SECONDS"] == "1900"
    assert data["LOG_JSON"] == "true"
    assert data["SCRAPER_ALLOW_PRIVATE_NETWORKS"] == "false"
    assert data["DAILY_SCRAPE_CRON"] == "0 2 * * *"
    assert data["WORKER_METRICS_PORT"] == "9808"
    assert data["SCHEDULER_METRICS_PORT"] == "9809"
    assert data["WORKER_HEARTBEAT_FILE"] == "/tmp/gristmill-worker.heartbeat"
    assert all(isinstance(v, str) for v in data.values())
    secret_names = {"DATABASE_URL", "REDIS_URL", "API_TOKENS", "API_READ_TOKENS"}
    assert not secret_names & data.keys()


def test_extra_config_lands_in_the_configmap():
    docs = render_chart({"extraConfig": {"NEW_SETTING": "x", "NEW_NUMBER": 1000000}})
    data = get(docs, "ConfigMap", "config")["data"]
    assert data["NEW_SETTING"] == "x"
    assert data["NEW_NUMBER"] == "1000000"


def test_secret_builds_urls_from_the_in_chart_services(default_docs):
    data = get(default_docs, "Secret", "secrets")["stringData"]
    assert data["DATABASE_URL"] == (
        "postgresql+psycopg://gristmill:insecure-dev-password-change-me"
        "@gristmill-postgresql:5432/gristmill"
    )
    assert data["REDIS_URL"] == "redis://:insecure-dev-password-change-me@gristmill-redis:6379/0"
    assert data["POSTGRES_PASSWORD"] == data["REDIS_PASSWORD"] == "insecure-dev-password-change-me"
    assert "CELERY_BROKER_URL" not in data


def test_passwords_are_url_encoded():
    docs = render_chart({"postgresql": {"auth": {"password": "p@ss/w:rd"}}})
    url = get(docs, "Secret", "secrets")["stringData"]["DATABASE_URL"]
    assert ":p%40ss%2Fw%3Ard@gristmill-postgresql" in url


def test_external_urls_and_celery_overrides():
    docs = render_chart(
        {
            "postgresql": {"enabled": False},
            "redis": {"enabled": False},
            "secrets": {
                "databaseUrl": "postgresql+psycopg://u:p@db:5432/g",
                "redisUrl": "redis://r:6379/1",
                "celeryBrokerUrl": "redis://broker:6379/2",
                "apiTokens": "a,b",
            },
        }
    )
    data = get(docs, "Secret", "secrets")["stringData"]
    assert data["DATABASE_URL"] == "postgresql+psycopg://u:p@db:5432/g"
    assert data["REDIS_URL"] == "redis://r:6379/1"
    assert data["CELERY_BROKER_URL"] == "redis://broker:6379/2"
    assert data["API_TOKENS"] == "a,b"
    assert "POSTGRES_PASSWORD" not in data
    assert not by_kind(docs, "StatefulSet")


def test_existing_secret_renders_no_secret_and_is_referenced_everywhere():
    docs = render_chart(EXTERNAL_EXISTING_SECRET)
    assert not by_kind(docs, "Secret")
    for name in APP_DEPLOYMENTS:
        deployment = get(docs, "Deployment", name)
        for container in containers(deployment).values():
            assert {"secretRef": {"name": "gristmill-prod"}} in container["envFrom"], name
        assert "checksum/secret" not in _pod_annotations(docs, name)
        assert "checksum/config" in _pod_annotations(docs, name)


def test_every_app_container_reads_config_and_secret(default_docs):
    for name in APP_DEPLOYMENTS:
        for container in containers(get(default_docs, "Deployment", name)).values():
            assert container["envFrom"] == [
                {"configMapRef": {"name": "gristmill-config"}},
                {"secretRef": {"name": "gristmill-secrets"}},
            ]


@pytest.mark.parametrize(
    ("values", "changed"),
    [
        ({"config": {"LOG_LEVEL": "DEBUG"}}, "checksum/config"),
        ({"extraConfig": {"SOMETHING": "new"}}, "checksum/config"),
        ({"secrets": {"apiTokens": "rotated"}}, "checksum/secret"),
    ],
)
def test_checksums_roll_pods_when_settings_change(default_docs, values, changed):
    docs = render_chart(values)
    unchanged = ({"checksum/config", "checksum/secret"} - {changed}).pop()
    for name in APP_DEPLOYMENTS:
        before, after = _pod_annotations(default_docs, name), _pod_annotations(docs, name)
        assert before[changed] != after[changed], name
        assert before[unchanged] == after[unchanged], name


def test_secret_values_never_reach_plain_objects():
    docs = render_chart({"secrets": {"apiTokens": "super-secret-token"}})
    for doc in docs:
        if doc["kind"] != "Secret":
            assert "super-secret-token" not in str(doc), doc["metadata"]["name"]


def test_workloads_never_embed_secret_values_as_plain_env(default_docs):
    for doc in workloads(default_docs):
        for container in containers(doc).values():
            for entry in container.get("env", []):
                assert entry["name"] not in {"DATABASE_URL", "REDIS_URL", "API_TOKENS"}


def test_every_env_reference_resolves_in_the_rendered_objects(value_set):
    """Each configMapKeyRef/secretKeyRef/envFrom names an object and key the chart renders
    (or, with existingSecret, that Secret)."""
    name, values = value_set
    docs = render_chart(values)
    existing = values.get("secrets", {}).get("existingSecret")
    external = {}
    if existing:
        keys = ["DATABASE_URL", "REDIS_URL", "POSTGRES_PASSWORD", "REDIS_PASSWORD"]
        keys += ["FLOWER_BASIC_AUTH", "KEDA_POSTGRESQL_CONNECTION"]
        external["Secret", existing] = dict.fromkeys(keys, "x")
    for doc in workloads(docs):
        for container in containers(doc).values():
            env = resolve_env(docs, container, external)
            if doc["metadata"]["labels"]["app.kubernetes.io/component"] in {"api", "worker"}:
                assert env["DATABASE_URL"], (name, doc["metadata"]["name"])
                assert env["REDIS_URL"], (name, doc["metadata"]["name"])
            # every $(VAR) in args is defined
            for part in command_line(container, env) if "args" in container else []:
                assert "$(" not in part, (name, doc["metadata"]["name"], part)
