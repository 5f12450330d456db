"""Scheduler: a beat singleton with a heartbeat-file liveness probe."""

from __future__ import annotations

from .helpers import by_kind, containers, get, pod_spec, render_chart


def test_scheduler_is_a_recreate_singleton(default_docs):
    deployment = get(default_docs, "Deployment", "scheduler")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_scheduler_runs_the_procfile_beat_command(default_docs):
    scheduler = containers(get(default_docs, "Deployment", "scheduler"))["scheduler"]
    assert scheduler["args"] == [
        "celery",
        "-A",
        "services.scheduler.app",
        "beat",
        "--loglevel",
        "INFO",
    ]
    # The schedule file is a setting (Settings.beat_schedule_file), not an argument.
    config = get(default_docs, "ConfigMap", "config")["data"]
    assert config["BEAT_SCHEDULE_FILE"] == "/tmp/gristmill-beat-schedule"
    assert config["BEAT_HEARTBEAT_FILE"] == "/tmp/gristmill-beat.heartbeat"


def test_scheduler_serves_metrics_on_a_named_port(default_docs):
    scheduler = containers(get(default_docs, "Deployment", "scheduler"))["scheduler"]
    assert scheduler["ports"] == [{"name": "metrics", "containerPort": 9809, "protocol": "TCP"}]
    config = get(default_docs, "ConfigMap", "config")["data"]
    assert config["SCHEDULER_METRICS_PORT"] == "9809"
    docs = render_chart({"scheduler": {"metricsPort": 9999}})
    scheduler = containers(get(docs, "Deployment", "scheduler"))["scheduler"]
    assert scheduler["ports"][0]["containerPort"] == 9999
    assert get(docs, "ConfigMap", "config")["data"]["SCHEDULER_METRICS_PORT"] == "9999"


def test_scheduler_liveness_reads_the_beat_heartbeat(default_docs):
    scheduler = containers(get(default_docs, "Deployment", "scheduler"))["scheduler"]
    command = scheduler["livenessProbe"]["exec"]["command"]
    assert command == [
        "sh",
        "-c",
        "test $(( $(date +%s) - $(stat -c %Y /tmp/gristmill-beat.heartbeat) )) -lt 120",
    ]
    assert scheduler["startupProbe"]["exec"]["command"] == command


def test_scheduler_never_scales_and_can_be_turned_off(default_docs):
    assert not [
        d for d in by_kind(default_docs, "HorizontalPodAutoscaler") if "scheduler" in str(d)
    ]
    docs = render_chart({"scheduler": {"enabled": False}})
    assert "gristmill-scheduler" not in [d["metadata"]["name"] for d in docs]


def test_scheduler_waits_for_the_schema(default_docs):
    spec = pod_spec(get(default_docs, "Deployment", "scheduler"))
    assert [c["name"] for c in spec["initContainers"]] == ["wait-for-db"]
