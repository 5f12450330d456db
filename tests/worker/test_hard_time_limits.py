"""A job killed at its hard time limit is recorded at once, re-run once, then dead-lettered."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gristmill.db import Database
from gristmill.jobs.models import Job
from tests.fakeplatform import FakePlatform
from tests.support.jobs import get_job, register_mastodon, start, wait_for_job
from tests.support.stack import Stack, wait_until

pytestmark = pytest.mark.integration

_KILLED = "Hard time limit (3.0s) exceeded"


@pytest.fixture
def impatient_high_pool(stack: Stack) -> Iterator[None]:
    """worker_high with a 3 s hard limit for scrapes."""
    stack.kill("worker_high", signal.SIGTERM)
    stack.start(
        "worker_high",
        {"SCRAPE_SOFT_TIME_LIMIT_SECONDS": "1", "SCRAPE_HARD_TIME_LIMIT_SECONDS": "3"},
    )
    yield
    stack.kill("worker_high", signal.SIGTERM)
    stack.start("worker_high")


def _pool_processes(stack: Stack) -> set[int]:
    main = stack.processes["worker_high"].pid
    children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    return {int(pid) for pid in children}


def _stall(
    stack: Stack, stack_api: httpx.Client, database: Database, job_id: str, attempt: int
) -> None:
    """Hold the job's row while its worker ends it: the worker blocks in code no soft limit
    can interrupt, until Celery kills it at the hard limit."""
    kills_before = stack.log("worker_high").count(_KILLED)

    def running() -> bool:
        job = get_job(stack_api, job_id)
        return job["status"] == "running" and job["attempts"] == attempt

    wait_until(running, timeout=30, interval=0.02, what=f"attempt {attempt} to run")
    holder = database.sessionmaker()
    holder.begin()
    holder.execute(select(Job.job_id).where(Job.job_id == job_id).with_for_update())
    pool = _pool_processes(stack)
    try:
        wait_until(
            lambda: (
                stack.log("worker_high").count("Hard time limit (3.0s) exceeded") > kills_before
            ),
            timeout=30,
            what="the hard time limit kill",
        )
        # Released only once Celery has replaced the killed pool process: a process still
        # alive would end the job as soon as the row is free.
        wait_until(lambda: not pool <= _pool_processes(stack), timeout=30, what="the kill")
    finally:
        holder.rollback()
        holder.close()


def test_a_job_killed_at_its_hard_limit_is_rerun_once_then_dead_lettered(
    stack: Stack,
    stack_api: httpx.Client,
    fake_platform: FakePlatform,
    clean_db: Database,
    impatient_high_pool: None,
) -> None:
    register_mastodon(stack_api, fake_platform, "stuck")
    # Slow enough to take the row lock while the job runs, fast enough for the soft limit.
    fake_platform.set_latency(0.8, "stuck")
    job_id = start(stack_api, "/api/jobs/scrape-account/stuck")
    _stall(stack, stack_api, clean_db, job_id, attempt=1)
    _stall(stack, stack_api, clean_db, job_id, attempt=2)
    job = wait_for_job(stack_api, job_id, timeout=30)
    assert job["status"] == "failed", job
    assert job["hard_timeouts"] == 2
    assert job["error_message"] == "killed at its hard time limit (3 s) 2 times; not sent again"
    letters = stack_api.get("/api/dead-letters").json()["items"]
    assert [letter["job_id"] for letter in letters] == [job_id]
    log = stack.log("worker_high")
    assert f"job {job_id} killed at its hard time limit (3s): requeued" in log
    assert f"job {job_id} killed at its hard time limit (3s): dead_lettered" in log
