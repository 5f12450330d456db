"""The schedules view shows what beat recorded: each entry's last run and its job."""

from __future__ import annotations

import signal

import httpx
import pytest

from tests.support.jobs import get_job
from tests.support.stack import Stack, wait_until

pytestmark = pytest.mark.integration


def test_the_schedules_view_shows_beats_last_run_and_its_job(
    stack: Stack, stack_api: httpx.Client
) -> None:
    stack.kill("scheduler", signal.SIGTERM)
    # A health check every second, so an entry fires within the test.
    stack.start("scheduler", {"HEALTH_CHECK_INTERVAL_SECONDS": "1"})
    try:

        def health_run() -> dict[str, object] | None:
            schedules = stack_api.get("/api/schedules").json()["schedules"]
            health = next(s for s in schedules if s["name"] == "health-check")
            return health if health["last_job_id"] else None

        health = wait_until(health_run, timeout=30, what="a recorded health-check run")
        assert isinstance(health, dict)
        job = get_job(stack_api, str(health["last_job_id"]))
        assert job["job_type"] == "health_check"
        assert health["last_run_at"] is not None
        assert health["last_slot_at"] is not None
    finally:
        stack.kill("scheduler", signal.SIGTERM)
        stack.start("scheduler")
