"""ServiceMonitor, PodMonitor, PrometheusRule (files/prometheus-rules.yaml) and dashboards."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from .helpers import CHART_DIR, EVERYTHING_ON, by_kind, copy_chart, get, render_chart

RULES = {
    "groups": [
        {
            "name": "gristmill",
            "rules": [
                {
                    "alert": "GristmillQueueBacklog",
                    "expr": 'sum(celery_queue_length{queue_name="high"}) > 100',
                    "for": "10m",
                    "labels": {"severity": "warning"},
                    "annotations": {"summary": "queue {{ $labels.queue_name }} backs up"},
                },
                {"record": "gristmill:jobs:rate5m", "expr": "sum(rate(jobs_total[5m]))"},
            ],
        }
    ]
}
DASHBOARD = {"title": "Gristmill {{ not a template }}", "panels": [], "schemaVersion": 39}


@pytest.fixture(scope="module")
def chart_with_files(tmp_path_factory):
    chart = copy_chart(tmp_path_factory.mktemp("chart"))
    files = chart / "files"
    shutil.rmtree(files, ignore_errors=True)  # only the fixtures below, not the real files
    (files / "dashboards").mkdir(parents=True, exist_ok=True)
    (files / "prometheus-rules.yaml").write_text(yaml.safe_dump(RULES))
    (files / "dashboards" / "Gristmill Overview.json").write_text(json.dumps(DASHBOARD))
    (files / "dashboards" / "workers.json").write_text(json.dumps({"title": "Workers"}))
    return chart


@pytest.fixture(scope="module")
def chart_without_files(tmp_path_factory):
    chart = copy_chart(tmp_path_factory.mktemp("bare"))
    shutil.rmtree(chart / "files", ignore_errors=True)
    return chart


def test_api_service_monitor_scrapes_metrics_on_http():
    docs = render_chart(EVERYTHING_ON)
    monitor = get(docs, "ServiceMonitor", "api")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"
    service = get(docs, "Service", "api")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()


def test_worker_pod_monitor_scrapes_the_metrics_port():
    docs = render_chart(EVERYTHING_ON)
    monitor = get(docs, "PodMonitor", "worker")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    for pool in ("high", "default", "low"):
        labels = get(docs, "Deployment", f"worker-{pool}")["spec"]["template"]["metadata"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= labels["labels"].items()


def test_scheduler_pod_monitor_scrapes_beat_metrics_port():
    docs = render_chart(EVERYTHING_ON)
    monitor = get(docs, "PodMonitor", "scheduler")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    deployment = get(docs, "Deployment", "scheduler")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 9809, "protocol": "TCP"} in container["ports"]
    # The worker PodMonitor must not pick up the scheduler (nor the reverse).
    worker_selector = get(docs, "PodMonitor", "worker")["spec"]["selector"]["matchLabels"]
    assert not worker_selector.items() <= labels.items()


def test_no_scheduler_pod_monitor_without_a_scheduler():
    docs = render_chart(EVERYTHING_ON | {"scheduler": {"enabled": False}})
    assert [m["metadata"]["name"] for m in by_kind(docs, "PodMonitor")] == ["gristmill-worker"]


def test_monitoring_objects_are_off_by_default(default_docs):
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert not by_kind(default_docs, kind)
    assert not [d for d in by_kind(default_docs, "ConfigMap") if "dashboard" in str(d)]


def test_prometheus_rule_wraps_the_rules_file(chart_with_files):
    docs = render_chart(EVERYTHING_ON, chart_dir=chart_with_files)
    rule = get(docs, "PrometheusRule", "gristmill")
    assert rule["spec"] == RULES
    # Alert templating is left for Prometheus, not eaten by Helm.
    annotation = rule["spec"]["groups"][0]["rules"][0]["annotations"]["summary"]
    assert annotation == "queue {{ $labels.queue_name }} backs up"


def test_one_dashboard_configmap_per_json_file(chart_with_files):
    docs = render_chart(EVERYTHING_ON, chart_dir=chart_with_files)
    dashboards = [
        d for d in by_kind(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard")
    ]
    assert sorted(d["metadata"]["name"] for d in dashboards) == [
        "gristmill-dashboard-gristmill-overview",
        "gristmill-dashboard-workers",
    ]
    overview = get(docs, "ConfigMap", "dashboard-gristmill-overview")
    assert overview["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(overview["data"]["gristmill-overview.json"]) == DASHBOARD


def test_renders_before_the_rule_and_dashboard_files_exist(chart_without_files):
    assert not (chart_without_files / "files" / "prometheus-rules.yaml").exists()
    docs = render_chart(EVERYTHING_ON, chart_dir=chart_without_files)
    assert not by_kind(docs, "PrometheusRule")
    assert not [d for d in by_kind(docs, "ConfigMap") if "grafana_dashboard" in str(d)]
    assert by_kind(docs, "ServiceMonitor")


def test_the_real_rules_and_dashboards_render_when_present():
    """Whatever files/ holds today renders into valid objects (render_chart validates them)."""
    docs = render_chart(EVERYTHING_ON)
    files = CHART_DIR / "files"
    if (files / "prometheus-rules.yaml").is_file():
        rule = get(docs, "PrometheusRule", "gristmill")
        source = yaml.safe_load((files / "prometheus-rules.yaml").read_text())
        assert rule["spec"]["groups"] == source["groups"]
    dashboards = sorted((files / "dashboards").glob("*.json")) if files.is_dir() else []
    labelled = [
        d for d in by_kind(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard")
    ]
    assert len(labelled) == len(dashboards)
    for cm in labelled:
        (content,) = cm["data"].values()
        json.loads(content)


def test_a_dashboard_shows_what_the_scheduler_pod_monitor_scrapes():
    exprs = [
        target["expr"]
        for path in sorted((CHART_DIR / "files" / "dashboards").glob("*.json"))
        for panel in json.loads(path.read_text())["panels"]
        for target in panel.get("targets", [])
    ]
    scheduler = [e for e in exprs if 'container="scheduler"' in e]
    assert any("celery_task_sent_total" in e for e in scheduler), scheduler
    assert any(e.startswith("max(up{") for e in scheduler), scheduler
