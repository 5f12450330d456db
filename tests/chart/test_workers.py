"""Worker pools: one Deployment per pool, queues, grace periods, probes, PDBs, KEDA."""

from __future__ import annotations

import pytest

from .helpers import (
    KEDA_POSTGRESQL,
    KEDA_PROMETHEUS,
    HelmError,
    by_kind,
    containers,
    env_value,
    get,
    pod_spec,
    render_chart,
)

POOLS = {"high": ["high"], "default": ["default"], "low": ["low"]}


def _arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_one_deployment_per_default_pool(default_docs):
    workers = [
        d
        for d in by_kind(default_docs, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    ]
    assert sorted(d["metadata"]["name"] for d in workers) == [
        "gristmill-worker-default",
        "gristmill-worker-high",
        "gristmill-worker-low",
    ]


@pytest.mark.parametrize(("pool", "queues"), POOLS.items())
def test_worker_command_is_the_procfile_command_for_the_pool(default_docs, pool, queues):
    worker = containers(get(default_docs, "Deployment", f"worker-{pool}"))["worker"]
    args = worker["args"]
    assert args[:4] == ["celery", "-A", "services.worker.app", "worker"]
    assert _arg(args, "--queues") == ",".join(queues)
    assert _arg(args, "--hostname") == f"{pool}@%h"
    assert _arg(args, "--pool") == "prefork"
    assert _arg(args, "--loglevel") == "INFO"
    assert _arg(args, "--concurrency") == "$(WORKER_CONCURRENCY)"
    expected_concurrency = {"high": "2", "default": "2", "low": "1"}[pool]
    assert env_value(worker, "WORKER_CONCURRENCY") == expected_concurrency


@pytest.mark.parametrize(("pool", "grace"), [("high", 390), ("default", 390), ("low", 1930)])
def test_grace_period_outlasts_the_longest_hard_time_limit(default_docs, pool, grace):
    spec = pod_spec(get(default_docs, "Deployment", f"worker-{pool}"))
    assert spec["terminationGracePeriodSeconds"] == grace


def test_grace_period_follows_the_configured_limits_and_overrides():
    values = {
        "config": {
            "SCRAPE_HARD_TIME_LIMIT_SECONDS": 100.5,
            "BACKFILL_HARD_TIME_LIMIT_SECONDS": 500,
            "MAINTENANCE_HARD_TIME_LIMIT_SECONDS": 900,
        },
        "workers": [
            {"name": "mixed", "queues": ["high", "low"], "concurrency": 4},
            {"name": "scrape", "queues": ["default"], "concurrency": 4},
            {"name": "fixed", "queues": ["low"], "concurrency": 1, "shutdownTimeoutSeconds": 42},
        ],
    }
    docs = render_chart(values)
    grace = {
        name: pod_spec(get(docs, "Deployment", f"worker-{name}"))["terminationGracePeriodSeconds"]
        for name in ("mixed", "scrape", "fixed")
    }
    assert grace == {"mixed": 930, "scrape": 131, "fixed": 42}
    mixed = containers(get(docs, "Deployment", "worker-mixed"))["worker"]
    assert _arg(mixed["args"], "--queues") == "high,low"


def test_liveness_is_the_heartbeat_file_not_celery_inspect(default_docs):
    worker = containers(get(default_docs, "Deployment", "worker-high"))["worker"]
    expected = [
        "sh",
        "-c",
        "test $(( $(date +%s) - $(stat -c %Y /tmp/gristmill-worker.heartbeat) )) -lt 60",
    ]
    assert worker["livenessProbe"]["exec"]["command"] == expected
    assert worker["startupProbe"]["exec"]["command"] == expected
    assert "inspect" not in str(worker)


def test_metrics_port_and_multiprocess_dir(default_docs):
    worker = containers(get(default_docs, "Deployment", "worker-low"))["worker"]
    assert worker["ports"] == [{"name": "metrics", "containerPort": 9808, "protocol": "TCP"}]
    assert env_value(worker, "PROMETHEUS_MULTIPROC_DIR") == "/tmp/prometheus-multiproc"
    docs = render_chart({"worker": {"prometheusMultiprocDir": "/tmp/metrics-files"}})
    worker = containers(get(docs, "Deployment", "worker-high"))["worker"]
    assert env_value(worker, "PROMETHEUS_MULTIPROC_DIR") == "/tmp/metrics-files"


def test_only_workers_get_a_multiprocess_dir(default_docs):
    # In the api or beat it would switch their metrics to files nobody merges.
    assert "PROMETHEUS_MULTIPROC_DIR" not in get(default_docs, "ConfigMap", "config")["data"]
    for name in ("api", "scheduler"):
        for container in containers(get(default_docs, "Deployment", name)).values():
            assert "PROMETHEUS_MULTIPROC_DIR" not in str(container), name


@pytest.mark.parametrize(
    "values",
    [
        {"worker": {"prometheusMultiprocDir": "/var/metrics"}},
        {"worker": {"heartbeatFile": "/heartbeat"}},
        {"scheduler": {"scheduleFile": "/data/beat"}},
    ],
    ids=["multiproc-dir", "worker-heartbeat", "beat-schedule"],
)
def test_paths_written_at_run_time_must_be_on_the_tmp_volume(values):
    # The root filesystem is read-only: /tmp (an emptyDir) is the only writable mount.
    with pytest.raises(HelmError, match="does not match pattern"):
        render_chart(values)


@pytest.mark.parametrize("pool", POOLS)
def test_each_pool_has_a_pdb_selecting_only_its_pods(default_docs, pool):
    pdb = get(default_docs, "PodDisruptionBudget", f"worker-{pool}")
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selector["gristmill.io/worker-pool"] == pool
    labels = get(default_docs, "Deployment", f"worker-{pool}")["spec"]["template"]["metadata"]
    assert selector.items() <= labels["labels"].items()


def test_pool_selectors_do_not_overlap(default_docs):
    selectors = [
        frozenset(d["spec"]["selector"]["matchLabels"].items())
        for d in by_kind(default_docs, "Deployment")
    ]
    for i, a in enumerate(selectors):
        for b in selectors[i + 1 :]:
            assert not (a <= b)
            assert not (b <= a)


def test_no_keda_objects_by_default(default_docs):
    assert not by_kind(default_docs, "ScaledObject")
    assert not by_kind(default_docs, "TriggerAuthentication")


def test_keda_prometheus_trigger_counts_every_priority_sub_list():
    docs = render_chart(KEDA_PROMETHEUS)
    objects = by_kind(docs, "ScaledObject")
    assert len(objects) == 3
    high = get(docs, "ScaledObject", "worker-high")
    assert high["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gristmill-worker-high",
    }
    (trigger,) = high["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    assert "celery_queue_length" in query
    assert 'queue_name=~"^(high)$"' in query
    assert 'namespace="gristmill-test"' in query
    assert trigger["metadata"]["threshold"] == "10"
    assert trigger["metadata"]["serverAddress"].startswith("http")
    # KEDA owns the replica count.
    assert "replicas" not in get(docs, "Deployment", "worker-high")["spec"]
    assert not by_kind(docs, "TriggerAuthentication")


def test_keda_postgresql_trigger_counts_pending_jobs_of_the_pool_queues():
    docs = render_chart(KEDA_POSTGRESQL)
    (trigger,) = get(docs, "ScaledObject", "worker-low")["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    assert trigger["metadata"]["query"] == (
        "SELECT count(*) FROM jobs WHERE status = 'pending' AND queue IN ('low')"
    )
    auth = get(docs, "TriggerAuthentication", "keda-postgresql")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref == {
        "parameter": "connection",
        "name": "gristmill-secrets",
        "key": "KEDA_POSTGRESQL_CONNECTION",
    }
    secret = get(docs, "Secret", "secrets")
    dsn = secret["stringData"]["KEDA_POSTGRESQL_CONNECTION"]
    # libpq/pgx does not understand SQLAlchemy's driver suffix.
    assert dsn.startswith("postgresql://gristmill:")
    assert dsn.endswith("@gristmill-postgresql:5432/gristmill")


def test_keda_only_for_pools_that_ask():
    docs = render_chart(
        {
            "workers": [
                {"name": "high", "queues": ["high"], "concurrency": 2},
                {
                    "name": "bulk",
                    "queues": ["default", "low"],
                    "concurrency": 2,
                    "autoscaling": {"enabled": True, "minReplicas": 0, "maxReplicas": 3},
                },
            ]
        }
    )
    (scaled,) = by_kind(docs, "ScaledObject")
    assert scaled["metadata"]["name"] == "gristmill-worker-bulk"
    assert scaled["spec"]["minReplicaCount"] == 0
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert 'queue_name=~"^(default|low)$"' in query
    assert get(docs, "Deployment", "worker-high")["spec"]["replicas"] == 1
