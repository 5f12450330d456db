"""The beat process records each scheduled run as a job; the jobs do what they say."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from gristmill.accounts.models import Account
from gristmill.clock import utc_now, utc_today
from gristmill.db import Database
from gristmill.jobs.models import Job
from gristmill.jobs.starts import create_job
from gristmill.jobs.types import JobStatus, JobType
from gristmill.metrics.models import DailyActivityRow
from tests.factories import make_job
from tests.fakeplatform import FakePlatform
from tests.support.jobs import register_mastodon, wait_for_job
from tests.support.stack import Stack, wait_until

pytestmark = pytest.mark.integration


def _start(database: Database, job_type: JobType) -> str:
    with database.transaction() as session:
        return str(create_job(session, job_type).job.job_id)


def test_health_check_job_checks_database_redis_and_workers(
    stack_api: httpx.Client, clean_db: Database
) -> None:
    job_id = _start(clean_db, JobType.HEALTH_CHECK)
    job = wait_for_job(stack_api, job_id)
    assert job["status"] == "completed", job
    assert job["result"]["database"] == "ok"
    assert job["result"]["redis"] == "ok"
    assert any(name.startswith("low@") for name in job["result"]["workers"])


def test_cleanup_deletes_only_old_finished_jobs(
    stack_api: httpx.Client, clean_db: Database
) -> None:
    old = utc_now() - timedelta(days=31)
    with clean_db.transaction() as session:
        old_parent = make_job(
            session,
            JobType.SCRAPE_ALL,
            status=JobStatus.COMPLETED,
            created_at=old,
            completed_at=old,
        )
        make_job(
            session, status=JobStatus.COMPLETED, parent_job_id=old_parent.job_id, completed_at=old
        )
        for _ in range(3):
            make_job(session, status=JobStatus.FAILED, created_at=old, completed_at=old)
        recent = make_job(session, status=JobStatus.COMPLETED, completed_at=utc_now())
        old_pending = make_job(session, status=JobStatus.PENDING, created_at=old)
    job = wait_for_job(stack_api, _start(clean_db, JobType.CLEANUP_OLD_JOBS))
    assert job["status"] == "completed", job
    assert job["result"]["deleted"] == 4  # the parent (with its child) and three failures
    with clean_db.transaction() as session:
        left = set(session.scalars(select(Job.job_id)))
        assert recent.job_id in left
        assert old_pending.job_id in left
        assert session.scalar(select(func.count()).select_from(Job)) == 3


def test_backfill_check_backfills_only_accounts_with_gaps(
    stack_api: httpx.Client, fake_platform: FakePlatform, clean_db: Database
) -> None:
    register_mastodon(stack_api, fake_platform, "gappy")
    register_mastodon(stack_api, fake_platform, "complete")
    with clean_db.transaction() as session:
        complete = session.scalar(select(Account).where(Account.key == "complete"))
        assert complete is not None
        session.add_all(
            DailyActivityRow(
                account_id=complete.id,
                date=utc_today() - timedelta(days=offset),
                posts=0,
                likes=0,
                reposts=0,
                replies=0,
                captured_at=utc_now(),
            )
            for offset in range(7)
        )
    parent = wait_for_job(stack_api, _start(clean_db, JobType.BACKFILL_CHECK), timeout=60)
    assert parent["status"] == "completed", parent
    assert parent["result"]["accounts_total"] == 1
    children = stack_api.get("/api/jobs", params={"parent_job_id": parent["job_id"]}).json()
    assert [(c["job_type"], c["account_key"], c["params"]["days"]) for c in children["items"]] == [
        ("backfill_account", "gappy", 7)
    ]
    assert len(stack_api.get("/api/accounts/gappy/metrics").json()["daily"]) == 7


def test_daily_scrape_all_runs_like_scrape_all(
    stack_api: httpx.Client, fake_platform: FakePlatform, clean_db: Database
) -> None:
    register_mastodon(stack_api, fake_platform, "d1", followers=11)
    parent = wait_for_job(stack_api, _start(clean_db, JobType.DAILY_SCRAPE_ALL), timeout=60)
    assert parent["status"] == "completed"
    assert parent["result"]["succeeded"] == 1


def test_beat_process_records_scheduled_runs_as_jobs(
    stack: Stack, stack_api: httpx.Client, tmp_path: Path
) -> None:
    """A second beat with a 1 s health-check interval: each run becomes a job row first."""
    beat = Stack(env=dict(stack.env), log_dir=tmp_path)
    beat.start(
        "scheduler",
        {
            "HEALTH_CHECK_INTERVAL_SECONDS": "1",
            "BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
            "BEAT_HEARTBEAT_FILE": str(tmp_path / "beat.heartbeat"),
        },
    )
    try:
        found = wait_until(
            lambda: [
                job
                for job in stack_api.get("/api/jobs", params={"job_type": "health_check"}).json()[
                    "items"
                ]
                if job["status"] == "completed"
            ],
            timeout=30,
            what="a completed health_check job sent by beat",
        )
        assert isinstance(found, list)
        assert found[0]["queue"] == "default"
        assert (tmp_path / "beat.heartbeat").exists()
    finally:
        beat.stop_all()
