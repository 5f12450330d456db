"""A real Prometheus scrapes the running stack; every dashboard query and alert evaluates."""

from __future__ import annotations

import functools
import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
import yaml
from sqlalchemy import text

from gristmill.db import Database
from gristmill.observability.heartbeat import worker_key
from gristmill.settings import Settings
from tests.observability.support import (
    DASHBOARD_DIR,
    RULES_FILE,
    as_promql,
    dashboard_queries,
    prometheus_tool,
)
from tests.support.stack import Stack, free_port, wait_until

pytestmark = pytest.mark.integration

# The worker pool restarted with its metrics port open (the stack starts workers with it off).
SCRAPED_POOL = "worker_default"


@dataclass
class Prometheus:
    url: str

    def query(self, promql: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body: dict[str, Any] = response.json()
        assert response.status_code == 200, (promql, body)
        assert body["status"] == "success", (promql, body)
        return body

    def has_data(self, promql: str) -> bool:
        return bool(self.query(promql)["data"]["result"])


@pytest.fixture(scope="module")
def scraped_worker_port(stack: Stack, test_settings: Settings) -> int:
    client = redis.Redis.from_url(test_settings.broker_url)
    record = worker_key(f"{SCRAPED_POOL.removeprefix('worker_')}@{socket.gethostname()}")
    try:
        # Restart it only once it is up: a worker stopped mid start-up logs a scary crash.
        wait_until(lambda: client.exists(record), timeout=60, what=f"{SCRAPED_POOL} to start")
        for _ in range(3):
            port = free_port()
            stack.kill(SCRAPED_POOL, signal.SIGTERM)
            stack.start(SCRAPED_POOL, {"WORKER_METRICS_PORT": str(port)})
            # The port may have been taken since free_port() (parallel test processes).
            outcome = wait_until(
                functools.partial(_metrics_bind_outcome, stack, port),
                timeout=60,
                what=f"{SCRAPED_POOL} to bind its metrics port",
            )
            if outcome == "bound":
                return port
    finally:
        client.close()
    raise AssertionError(f"{SCRAPED_POOL} found no free metrics port")


def _metrics_bind_outcome(stack: Stack, port: int) -> str | None:
    log = stack.log(SCRAPED_POOL)
    if f"worker metrics on http://0.0.0.0:{port}/" in log:
        return "bound"
    if f"cannot serve worker metrics on port {port}" in log:
        return "taken"
    return None


@pytest.fixture(scope="module")
def prometheus(
    stack: Stack, scraped_worker_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    binary = prometheus_tool("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    api_target = stack.api_url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [
            {"job_name": "gristmill-api", "static_configs": [{"targets": [api_target]}]},
            {
                "job_name": "gristmill-worker",
                "static_configs": [{"targets": [f"127.0.0.1:{scraped_worker_port}"]}],
            },
        ],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("ab")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_file}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={workdir / 'data'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Prometheus(f"http://127.0.0.1:{port}")

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError((workdir / "prometheus.log").read_text()[-3000:])
        try:
            return httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, timeout=30, what="prometheus to be ready")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def finished_job(stack: Stack, prometheus: Prometheus, database: Database) -> dict[str, Any]:
    """One real job through api -> broker -> scraped worker, so task series exist."""
    # The stack and its database are shared with the test files run before this one: a
    # scrape-all over accounts they left (some the fake platform does not know) can end
    # failed. Over no active account it completes at once.
    with database.transaction() as session:
        session.execute(text("UPDATE accounts SET active = false"))
    headers = {"Authorization": f"Bearer {stack.api_token}"}
    response = httpx.post(f"{stack.api_url}/api/jobs/scrape-all", headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = httpx.get(
            f"{stack.api_url}/api/jobs/{job_id}", headers=headers, timeout=5
        ).json()
        return job if job["status"] in {"completed", "failed", "cancelled"} else None

    job = wait_until(finished, timeout=60, what="the scrape-all job to finish")
    assert isinstance(job, dict)
    return job


def test_every_target_is_scraped(prometheus: Prometheus) -> None:
    def all_up() -> bool:
        result = prometheus.query("up")["data"]["result"]
        return len(result) == 2 and all(sample["value"][1] == "1" for sample in result)

    wait_until(all_up, timeout=30, what="both scrape targets to be up")


def test_cluster_and_worker_series_arrive(
    prometheus: Prometheus, finished_job: dict[str, Any]
) -> None:
    expected = [
        'celery_queue_length{job="gristmill-api", queue_name="default"}',
        'celery_worker_up{job="gristmill-api"} == 1',
        'celery_active_worker_count{queue_name="default"} >= 1',
        'gristmill_metrics_collector_up{source="redis"} == 1',
        'gristmill_metrics_collector_up{source="database"} == 1',
        'gristmill_jobs{status="completed", job_type="scrape_all"} >= 1',
        'celery_task_sent_total{job="gristmill-api", name="gristmill.scrape_all_accounts"}',
        'celery_task_received_total{job="gristmill-worker", queue_name="default"}',
        'celery_task_started_total{job="gristmill-worker", name="gristmill.scrape_all_accounts"}',
        'celery_task_runtime_count{job="gristmill-worker"}',
        'gristmill_task_queue_wait_seconds_count{job="gristmill-worker"}',
    ]
    for promql in expected:
        wait_until(functools.partial(prometheus.has_data, promql), timeout=30, what=promql)


def test_every_dashboard_query_evaluates(
    prometheus: Prometheus, finished_job: dict[str, Any]
) -> None:
    # Wait for two scrapes of the task counters so rate() has something to work with.
    wait_until(
        lambda: prometheus.has_data("sum(rate(celery_task_started_total[5m]))"),
        timeout=30,
        what="task rates",
    )
    must_have_data = {
        "Workers up",
        "Messages waiting",
        "Metrics sources",
        "Queue depth",
        "Workers per queue",
        "Active tasks per worker",
        "Worker heartbeat age",
        "Task rate by outcome",
        "Jobs by status",
        "Dead letters",
        "Task runtime",
        "Queue wait",
    }
    # Every query must evaluate (query() asserts success); a panel has data if any of its
    # queries returns some (no task was revoked, so that line of "Task rate" stays empty).
    with_data: set[str] = set()
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        for title, promql in dashboard_queries(json.loads(path.read_text())):
            if prometheus.query(promql)["data"]["result"]:
                with_data.add(title)
    assert not must_have_data - with_data, f"panels without data: {must_have_data - with_data}"


def test_every_alert_rule_evaluates(prometheus: Prometheus) -> None:
    def evaluated_rules() -> list[dict[str, Any]] | None:
        response = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=5).json()
        rules = [rule for group in response["data"]["groups"] for rule in group["rules"]]
        # Wait until every rule has been evaluated at least once.
        if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules):
            return rules
        return None

    rules = wait_until(evaluated_rules, timeout=30, what="every rule to be evaluated")
    assert isinstance(rules, list)
    expected = {
        r["alert"] for g in yaml.safe_load(RULES_FILE.read_text())["groups"] for r in g["rules"]
    }
    assert {rule["name"] for rule in rules} == expected
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not broken
    for group in yaml.safe_load(RULES_FILE.read_text())["groups"]:
        for rule in group["rules"]:
            prometheus.query(as_promql(rule["expr"]))


def test_healthy_stack_raises_no_outage_alert(
    prometheus: Prometheus, finished_job: dict[str, Any]
) -> None:
    # These must not even be pending while every pool heartbeats and both sources answer.
    outages = {
        "GristmillNoWorkers",
        "GristmillMetricsSourceDown",
        "GristmillClusterMetricsAbsent",
        "GristmillQueueBacklog",
    }

    def raised() -> list[dict[str, Any]]:
        alerts = httpx.get(f"{prometheus.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return [alert for alert in alerts if alert["labels"]["alertname"] in outages]

    # Rules evaluated before the first scrape see no series at all (absent() is pending then);
    # one evaluation later, with data, a healthy stack must have none of them.
    wait_until(
        lambda: prometheus.has_data("celery_active_worker_count") and not raised(),
        timeout=30,
        what="the outage alerts of a healthy stack to clear",
    )
