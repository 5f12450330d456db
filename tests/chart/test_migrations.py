"""Migrations: a `gristmill migrate` Job run as a Helm hook (or plain Job), with its config."""

from __future__ import annotations

from .helpers import (
    EXTERNAL_EXISTING_SECRET,
    by_kind,
    containers,
    get,
    pod_spec,
    render_chart,
)

HOOK_DELETE = "before-hook-creation,hook-succeeded"


def _hook(doc):
    return doc["metadata"].get("annotations", {}).get("helm.sh/hook")


def _external_urls():
    return {
        "postgresql": {"enabled": False},
        "redis": {"enabled": False},
        "secrets": {
            "databaseUrl": "postgresql+psycopg://app:pw@db.example.com:5432/gristmill",
            "redisUrl": "redis://:pw@redis.example.com:6379/0",
        },
    }


def test_migrate_job_runs_gristmill_migrate(default_docs):
    job = get(default_docs, "Job", "migrate")
    migrate = containers(job)["migrate"]
    assert migrate["args"] == ["gristmill", "migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 3, "must retry while the database starts"


def test_in_chart_database_runs_migrations_after_install(default_docs):
    job = get(default_docs, "Job", "migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == HOOK_DELETE


def test_external_database_runs_migrations_before_install_with_hook_config_copies():
    docs = render_chart(_external_urls())
    job = get(docs, "Job", "migrate")
    assert _hook(job) == "pre-install,pre-upgrade"
    config = get(docs, "ConfigMap", "migrate-config")
    secret = get(docs, "Secret", "migrate-secrets")
    for copy in (config, secret):
        annotations = copy["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(annotations["helm.sh/hook-weight"]) < int(
            job["metadata"]["annotations"]["helm.sh/hook-weight"]
        )
        assert annotations["helm.sh/hook-delete-policy"] == HOOK_DELETE
    # The copies hold the same settings as the release's own objects.
    assert config["data"] == get(docs, "ConfigMap", "config")["data"]
    assert secret["stringData"] == get(docs, "Secret", "secrets")["stringData"]
    env_from = containers(job)["migrate"]["envFrom"]
    assert env_from == [
        {"configMapRef": {"name": "gristmill-migrate-config"}},
        {"secretRef": {"name": "gristmill-migrate-secrets"}},
    ]


def test_existing_secret_is_used_directly_by_the_hook():
    docs = render_chart(EXTERNAL_EXISTING_SECRET)
    assert not by_kind(docs, "Secret")
    env_from = containers(get(docs, "Job", "migrate"))["migrate"]["envFrom"]
    assert {"secretRef": {"name": "gristmill-prod"}} in env_from


def test_without_hooks_it_is_a_plain_job_on_the_release_config():
    docs = render_chart({"migrations": {"useHelmHooks": False}})
    job = get(docs, "Job", "migrate")
    assert "annotations" not in job["metadata"]
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert containers(job)["migrate"]["envFrom"] == [
        {"configMapRef": {"name": "gristmill-config"}},
        {"secretRef": {"name": "gristmill-secrets"}},
    ]
    assert not [d for d in docs if _hook(d)]


def test_create_database_runs_first_when_asked():
    docs = render_chart({"migrations": {"createDatabase": True}})
    spec = pod_spec(get(docs, "Job", "migrate"))
    assert [c["args"] for c in spec["initContainers"]] == [["gristmill", "create-db"]]


def test_app_pods_wait_for_the_schema(default_docs):
    for name in ("api", "worker-high", "worker-default", "worker-low", "scheduler"):
        init = pod_spec(get(default_docs, "Deployment", name))["initContainers"]
        assert init[0]["args"] == ["gristmill", "wait-for-db", "--timeout", "300"], name


def test_migrations_can_be_disabled():
    docs = render_chart({"migrations": {"enabled": False}})
    assert not by_kind(docs, "Job")
