"""Beat records each run (entry, time, job) in Redis; the api's schedules view shows it."""

from __future__ import annotations

import signal
import uuid

import httpx
import pytest
import redis

from gristmill.schedules import read_runs
from gristmill.settings import Settings
from tests.support.jobs import get_job
from tests.support.stack import Stack, wait_until

pytestmark = pytest.mark.integration


def test_beat_records_each_run_with_its_job(
    stack: Stack, stack_api: httpx.Client, test_settings: Settings
) -> None:
    client = redis.Redis.from_url(test_settings.redis_url.get_secret_value())
    stack.kill("scheduler", signal.SIGTERM)
    # A health check every second, so a job-creating entry runs within the test.
    stack.start("scheduler", {"HEALTH_CHECK_INTERVAL_SECONDS": "1"})
    try:
        runs = wait_until(
            lambda: (found := read_runs(client)).get("health-check") and found,
            timeout=30,
            what="a recorded health-check run",
        )
        assert isinstance(runs, dict)
        health = runs["health-check"]
        assert health.job_id is not None
        job = get_job(stack_api, str(health.job_id))
        assert job["job_type"] == "health_check"
        orphans = wait_until(
            lambda: read_runs(client).get("requeue-orphaned-jobs"), timeout=30, what="orphans"
        )
        assert isinstance(orphans.job_id, uuid.UUID)  # type: ignore[union-attr]
        shown = {s["name"]: s for s in stack_api.get("/api/schedules").json()["schedules"]}
        assert shown["health-check"]["last_job_id"] is not None
        assert shown["health-check"]["last_run_at"] is not None
    finally:
        stack.kill("scheduler", signal.SIGTERM)
        stack.start("scheduler")
