"""Job state transitions, called directly against the real database."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from gristmill.clock import utc_now
from gristmill.db import Database
from gristmill.jobs.lifecycle import (
    Ending,
    claim_jobs,
    dead_letter_jobs,
    finish_jobs,
    report_progress,
    still_owned,
)
from gristmill.jobs.models import DeadLetter, Job
from gristmill.jobs.orphans import requeue_orphaned_jobs
from gristmill.jobs.retries import Postponement, postpone_jobs, retry_delay
from gristmill.jobs.service import cancel_job
from gristmill.jobs.starts import create_job
from gristmill.jobs.types import Attempt, JobStatus, JobType
from gristmill.settings import Settings
from tests.factories import make_job


def _job(database: Database, job_id: uuid.UUID) -> Job:
    with database.transaction() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def _claimed(database: Database) -> Attempt:
    with database.transaction() as session:
        job_id = make_job(session).job_id
    with database.transaction() as session:
        (job,) = claim_jobs(session, [job_id])
        return Attempt(job.job_id, job.attempts)


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


def test_a_job_waiting_out_its_backoff_is_not_claimed_early(clean_db: Database) -> None:
    with clean_db.transaction() as session:
        job = make_job(session)
        job.run_after = utc_now() + timedelta(minutes=5)
    with clean_db.transaction() as session:
        assert claim_jobs(session, [job.job_id]) == []


def test_progress_never_goes_down_and_stops_once_cancelled(clean_db: Database) -> None:
    owner = _claimed(clean_db)
    for value, expected in ((40, 40), (20, 40), (70, 70), (150, 100)):
        with clean_db.transaction() as session:
            assert report_progress(session, owner, value, {"step": value}) is True
        assert _job(clean_db, owner.job_id).progress == expected
    with clean_db.transaction() as session:
        assert report_progress(session, Attempt(owner.job_id, 2), 90, None) is False
    with clean_db.transaction() as session:
        cancel_job(session, owner.job_id)
    with clean_db.transaction() as session:
        assert report_progress(session, owner, 90, None) is False
        assert still_owned(session, [owner], beat=True) == set()


def test_nothing_is_written_for_a_job_after_it_is_cancelled(clean_db: Database) -> None:
    owner = _claimed(clean_db)
    with clean_db.transaction() as session:
        cancel_job(session, owner.job_id)
    with clean_db.transaction() as session:
        ended = finish_jobs(session, [Ending(owner, JobStatus.COMPLETED, {"pages": 3})])
    assert ended == []
    job = _job(clean_db, owner.job_id)
    assert job.status == "cancelled"
    assert job.result is None


def test_an_attempt_that_lost_its_job_cannot_end_it(clean_db: Database) -> None:
    owner = _claimed(clean_db)
    with clean_db.transaction() as session:
        ended = finish_jobs(
            session, [Ending(Attempt(owner.job_id, owner.attempt - 1), JobStatus.FAILED)]
        )
    assert ended == []
    assert _job(clean_db, owner.job_id).status == "running"


def test_bulk_endings_record_each_jobs_own_result_and_error(clean_db: Database) -> None:
    owners = [_claimed(clean_db) for _ in range(3)]
    with clean_db.transaction() as session:
        ended = finish_jobs(
            session,
            [
                Ending(owners[0], JobStatus.COMPLETED, {"n": 0}),
                Ending(owners[1], JobStatus.FAILED, None, "HTTP 403"),
                Ending(owners[2], JobStatus.COMPLETED, {"n": 2}),
            ],
        )
    assert {job.job_id for job in ended} == {owner.job_id for owner in owners}
    first, second, third = (_job(clean_db, owner.job_id) for owner in owners)
    assert (first.status, first.progress, first.result) == ("completed", 100, {"n": 0})
    assert (second.status, second.error_message, second.result) == ("failed", "HTTP 403", None)
    assert third.result == {"n": 2}
    assert first.completed_at is not None


def test_a_retry_goes_back_to_the_outbox_after_its_delay(clean_db: Database) -> None:
    owner = _claimed(clean_db)
    with clean_db.transaction() as session:
        postponed = postpone_jobs(session, [Postponement(owner, "HTTP 503", 30.0)])
    assert [job.job_id for job in postponed] == [owner.job_id]
    job = _job(clean_db, owner.job_id)
    assert (job.status, job.retries, job.enqueued_at) == ("pending", 1, None)
    assert job.run_after is not None
    assert 25 <= (job.run_after - utc_now()).total_seconds() <= 31
    with clean_db.transaction() as session:
        assert claim_jobs(session, [owner.job_id]) == []
        session.execute(update(Job).where(Job.job_id == owner.job_id).values(run_after=utc_now()))
    with clean_db.transaction() as session:
        (again,) = claim_jobs(session, [owner.job_id])
    deferred_owner = Attempt(owner.job_id, again.attempts)
    with clean_db.transaction() as session:
        postpone_jobs(
            session, [Postponement(deferred_owner, "circuit open", 5.0, spends_retry=False)]
        )
    assert _job(clean_db, owner.job_id).retries == 1


def test_dead_letters_record_the_error_and_attempts(clean_db: Database) -> None:
    owner = _claimed(clean_db)
    with clean_db.transaction() as session:
        dead_letter_jobs(session, [Ending(owner, JobStatus.FAILED, None, "gave up")])
    with clean_db.transaction() as session:
        letter = session.get(DeadLetter, owner.job_id)
        assert letter is not None
        assert (letter.error_message, letter.attempts) == ("gave up", 1)
    assert _job(clean_db, owner.job_id).status == "failed"


def test_identical_starts_return_the_active_job_unless_forced(clean_db: Database) -> None:
    with clean_db.transaction() as session:
        first = create_job(session, JobType.SCRAPE_ALL)
        again = create_job(session, JobType.SCRAPE_ALL)
        forced = create_job(session, JobType.SCRAPE_ALL, force=True)
        other = create_job(session, JobType.SCRAPE_PLATFORM, params={"platform": "bluesky"})
    created = [first.created, again.created, forced.created, other.created]
    assert created == [True, False, True, True]
    assert again.job.job_id == first.job.job_id
    assert forced.job.job_id != first.job.job_id
    with clean_db.transaction() as session:
        cancel_job(session, first.job.job_id)
    with clean_db.transaction() as session:
        after_cancel = create_job(session, JobType.SCRAPE_ALL)
    assert after_cancel.created


def test_orphans_with_a_stale_heartbeat_go_back_to_the_outbox(
    clean_db: Database, test_settings: Settings
) -> None:
    stale = utc_now() - timedelta(seconds=test_settings.job_heartbeat_timeout_seconds + 5)
    with clean_db.transaction() as session:
        orphan = make_job(session, status=JobStatus.RUNNING)
        alive = make_job(session, status=JobStatus.RUNNING)
        lost_too_often = make_job(session, status=JobStatus.RUNNING)
        lost_too_often.worker_losses = test_settings.task_max_worker_losses
        session.flush()
        for job, beat in ((orphan, stale), (alive, utc_now()), (lost_too_often, stale)):
            session.execute(update(Job).where(Job.job_id == job.job_id).values(heartbeat_at=beat))
    with clean_db.transaction() as session:
        requeued = requeue_orphaned_jobs(session, test_settings)
    assert requeued == [orphan.job_id]
    back = _job(clean_db, orphan.job_id)
    assert (back.status, back.worker_losses, back.enqueued_at) == ("pending", 1, None)
    assert _job(clean_db, alive.job_id).status == "running"
    given_up = _job(clean_db, lost_too_often.job_id)
    assert given_up.status == "failed"
    assert "worker lost" in (given_up.error_message or "")
    with clean_db.transaction() as session:
        assert session.get(DeadLetter, lost_too_often.job_id) is not None


@pytest.mark.parametrize("retry", [1, 2, 3, 8])
def test_retry_delay_is_exponential_with_jitter_and_capped(
    test_settings: Settings, retry: int
) -> None:
    settings = test_settings.model_copy(
        update={"retry_backoff_base_seconds": 60, "retry_backoff_max_seconds": 600}
    )
    ceiling = min(600, 60 * 2 ** (retry - 1))
    delays = [retry_delay(settings, retry, None) for _ in range(200)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len({round(delay, 3) for delay in delays}) > 1
    assert retry_delay(settings, retry, 900) == 900
    assert retry_delay(settings, retry, float("inf")) == 1800
