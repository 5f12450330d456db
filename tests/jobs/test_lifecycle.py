"""Job state transitions, called directly against the real database."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from gristmill.clock import utc_now
from gristmill.db import Database
from gristmill.jobs.lifecycle import (
    ProgressAck,
    claim_jobs,
    finish_job,
    refresh_parent,
    report_progress,
    requeue_orphaned_jobs,
    retry_delay,
)
from gristmill.jobs.models import DeadLetter, Job
from gristmill.jobs.service import cancel_job
from gristmill.jobs.types import JobStatus, JobType
from gristmill.settings import Settings
from tests.factories import make_job


def _job(database: Database, job_id: uuid.UUID) -> Job:
    with database.transaction() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def test_a_job_is_claimed_once(clean_db: Database) -> None:
    with clean_db.transaction() as session:
        job_id = make_job(session).job_id
    with clean_db.transaction() as session:
        first = claim_jobs(session, [job_id])
    with clean_db.transaction() as session:
        second = claim_jobs(session, [job_id])
    assert [job.job_id for job in first] == [job_id]
    assert second == []
    claimed = _job(clean_db, job_id)
    assert claimed.status == "running"
    assert claimed.attempts == 1
    assert claimed.started_at is not None


def test_progress_never_goes_down_and_reports_a_cancel(clean_db: Database) -> None:
    with clean_db.transaction() as session:
        job_id = make_job(session, status=JobStatus.RUNNING).job_id
    for value, expected in ((40, 40), (20, 40), (70, 70), (150, 100)):
        with clean_db.transaction() as session:
            ack = report_progress(session, job_id, value, {"step": value}, attempt=0)
        assert ack is ProgressAck.RUNNING
        assert _job(clean_db, job_id).progress == expected
    with clean_db.transaction() as session:
        assert report_progress(session, job_id, 90, None, attempt=1) is ProgressAck.SUPERSEDED
    with clean_db.transaction() as session:
        cancel_job(session, job_id)
    with clean_db.transaction() as session:
        assert report_progress(session, job_id, 90, None, attempt=0) is ProgressAck.CANCELLED


def test_finishing_a_cancelled_job_keeps_it_cancelled_with_partial_result(
    clean_db: Database,
) -> None:
    with clean_db.transaction() as session:
        job_id = make_job(session, status=JobStatus.RUNNING).job_id
    with clean_db.transaction() as session:
        cancel_job(session, job_id)
    with clean_db.transaction() as session:
        ended = finish_job(session, job_id, JobStatus.COMPLETED, result={"pages": 3}, attempt=0)
    assert ended is False
    job = _job(clean_db, job_id)
    assert job.status == "cancelled"
    assert job.result == {"pages": 3}


def test_an_attempt_that_lost_its_job_cannot_end_it(clean_db: Database) -> None:
    with clean_db.transaction() as session:
        job_id = make_job(session).job_id
        claim_jobs(session, [job_id])  # attempt 1
    with clean_db.transaction() as session:
        ended = finish_job(session, job_id, JobStatus.FAILED, result=None, attempt=0)
    assert ended is False
    assert _job(clean_db, job_id).status == "running"


def test_parent_completes_when_all_children_end_and_fails_only_if_none_succeeded(
    clean_db: Database,
) -> None:
    with clean_db.transaction() as session:
        parent = make_job(session, JobType.SCRAPE_ALL, status=JobStatus.RUNNING)
        parent.children_total = 2
        ok = make_job(
            session, status=JobStatus.RUNNING, parent_job_id=parent.job_id, account_key="a"
        )
        bad = make_job(
            session, status=JobStatus.RUNNING, parent_job_id=parent.job_id, account_key="b"
        )
    with clean_db.transaction() as session:
        finish_job(session, ok.job_id, JobStatus.COMPLETED, result={}, attempt=0)
    halfway = _job(clean_db, parent.job_id)
    assert halfway.status == "running"
    assert halfway.progress == 50
    with clean_db.transaction() as session:
        finish_job(
            session, bad.job_id, JobStatus.FAILED, result=None, attempt=0, error_message="HTTP 403"
        )
    done = _job(clean_db, parent.job_id)
    assert done.status == "completed"
    assert done.progress == 100
    assert done.result == {
        "accounts_total": 2,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
        "failures": [{"account_key": "b", "error": "HTTP 403"}],
    }

    with clean_db.transaction() as session:
        all_failed = make_job(session, JobType.SCRAPE_ALL, status=JobStatus.RUNNING)
        all_failed.children_total = 1
        make_job(session, status=JobStatus.FAILED, parent_job_id=all_failed.job_id)
    with clean_db.transaction() as session:
        refresh_parent(session, all_failed.job_id)
    failed = _job(clean_db, all_failed.job_id)
    assert failed.status == "failed"
    assert failed.error_message == "all 1 accounts failed"


def test_orphans_with_a_stale_heartbeat_go_back_to_pending(
    clean_db: Database, test_settings: Settings
) -> None:
    stale = utc_now() - timedelta(seconds=test_settings.job_heartbeat_timeout_seconds + 5)
    with clean_db.transaction() as session:
        orphan = make_job(session, status=JobStatus.RUNNING)
        alive = make_job(session, status=JobStatus.RUNNING)
        session.execute(update(Job).where(Job.job_id == orphan.job_id).values(heartbeat_at=stale))
        session.execute(
            update(Job).where(Job.job_id == alive.job_id).values(heartbeat_at=utc_now())
        )
        lost_too_often = make_job(session, status=JobStatus.RUNNING)
        lost_too_often.attempts = test_settings.task_max_retries + 1
        lost_too_often.heartbeat_at = stale
        session.flush()
        sent: list[uuid.UUID] = requeue_orphaned_jobs(session, test_settings)
        assert session.get(DeadLetter, lost_too_often.job_id) is not None
        assert "worker lost" in (
            session.get(Job, lost_too_often.job_id, populate_existing=True).error_message or ""
        )
        # Rolled back: nothing is committed, so nothing is sent to the broker.
        session.rollback()
    assert sent == [orphan.job_id]


@pytest.mark.parametrize("attempt", [1, 2, 3, 8])
def test_retry_delay_is_exponential_with_jitter_and_capped(
    test_settings: Settings, attempt: int
) -> None:
    settings = test_settings.model_copy(
        update={"retry_backoff_base_seconds": 60, "retry_backoff_max_seconds": 600}
    )
    ceiling = min(600, 60 * 2 ** (attempt - 1))
    delays = [retry_delay(settings, attempt, None) for _ in range(200)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len({round(delay, 3) for delay in delays}) > 1
    assert retry_delay(settings, attempt, 900) == 900
    assert retry_delay(settings, attempt, float("inf")) == 1800
