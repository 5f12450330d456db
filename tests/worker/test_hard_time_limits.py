"""A job killed at its hard time limit is recorded at once, re-run once, then dead-lettered."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gristmill.clock import utc_today
from gristmill.db import Database
from gristmill.jobs.models import Job
from tests.fakeplatform import FakePlatform, FakePost
from tests.support.jobs import get_job, register_mastodon, start, wait_for_job
from tests.support.stack import Stack, wait_until

pytestmark = pytest.mark.integration

POOL = "worker_low"
_KILLED = "Hard time limit (4.0s) exceeded"


@pytest.fixture
def impatient_low_pool(stack: Stack) -> Iterator[None]:
    """worker_low with a 2 s soft and a 4 s hard limit for backfills."""
    stack.kill(POOL, signal.SIGTERM)
    stack.start(
        POOL,
        {"BACKFILL_SOFT_TIME_LIMIT_SECONDS": "2", "BACKFILL_HARD_TIME_LIMIT_SECONDS": "4"},
    )
    yield
    stack.kill(POOL, signal.SIGTERM)
    stack.start(POOL)


def _pool_processes(stack: Stack) -> set[int]:
    main = stack.processes[POOL].pid
    children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    return {int(pid) for pid in children}


def _stall(
    stack: Stack, stack_api: httpx.Client, database: Database, job_id: str, attempt: int
) -> None:
    """Hold the job's row while its worker records a page: the worker blocks in a database
    write (no soft limit can interrupt that) until Celery kills it at the hard limit. The
    write's transaction dies with the process, so nothing of it commits."""

    def running() -> bool:
        job = get_job(stack_api, job_id)
        return job["status"] == "running" and job["attempts"] == attempt

    kills_before = stack.log(POOL).count(_KILLED)
    wait_until(running, timeout=30, interval=0.02, what=f"attempt {attempt} to run")
    holder = database.sessionmaker()
    holder.begin()
    holder.execute(select(Job.job_id).where(Job.job_id == job_id).with_for_update())
    pool = _pool_processes(stack)
    try:
        wait_until(
            lambda: stack.log(POOL).count(_KILLED) > kills_before,
            timeout=30,
            what="the hard time limit kill",
        )
        # Released only once Celery has replaced the killed pool process.
        wait_until(lambda: not pool <= _pool_processes(stack), timeout=30, what="the kill")
    finally:
        holder.rollback()
        holder.close()


def test_a_job_killed_at_its_hard_limit_is_rerun_once_then_dead_lettered(
    stack: Stack,
    stack_api: httpx.Client,
    fake_platform: FakePlatform,
    clean_db: Database,
    impatient_low_pool: None,
) -> None:
    start_of_window = datetime.combine(utc_today() - timedelta(days=9), time(0, 0, 1), UTC)
    posts = [FakePost(start_of_window + timedelta(hours=2 * i), likes=1) for i in range(100)]
    register_mastodon(stack_api, fake_platform, "stuck", posts=posts)
    # Several pages, each answered after 0.2 s: the job is running its second page by the time
    # the row is held.
    fake_platform.set_latency(0.2, "stuck")
    job_id = start(stack_api, "/api/jobs/backfill-account/stuck", {"days": 10})
    _stall(stack, stack_api, clean_db, job_id, attempt=1)
    _stall(stack, stack_api, clean_db, job_id, attempt=2)
    job = wait_for_job(stack_api, job_id, timeout=30)
    assert job["status"] == "failed", job
    assert job["hard_timeouts"] == 2
    assert job["error_message"] == "killed at its hard time limit (4 s) 2 times; not sent again"
    letters = stack_api.get("/api/dead-letters").json()["items"]
    assert [letter["job_id"] for letter in letters] == [job_id]
    log = stack.log(POOL)
    assert f"job {job_id} killed at its hard time limit (4s): requeued" in log
    assert f"job {job_id} killed at its hard time limit (4s): dead_lettered" in log
