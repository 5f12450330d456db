"""Jobs whose worker died under them: put back to pending, or dead-lettered past a budget.

A worker refreshes `heartbeat_at` of the jobs it runs (jobs/watch.py). The orphan check, run by
the outbox relay, finds running jobs whose heartbeat went stale (SIGKILL, OOM, a node lost)
and puts them back to pending; the relay then sends them again.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from gristmill.clock import utc_now
from gristmill.events import JobChange, publish_jobs
from gristmill.jobs.lifecycle import Ending, back_to_pending, dead_letter_jobs
from gristmill.jobs.models import Job
from gristmill.jobs.types import Attempt, JobStatus
from gristmill.settings import Settings


def requeue_orphaned_jobs(session: Session, settings: Settings) -> list[uuid.UUID]:
    """Put back to pending every running job whose worker stopped sending heartbeats (it was
    killed); the outbox relay sends it again. A job that keeps losing its worker is
    dead-lettered after TASK_MAX_WORKER_LOSSES."""
    stale_before = utc_now() - timedelta(seconds=settings.job_heartbeat_timeout_seconds)
    stale = list(
        session.scalars(
            select(Job)
            .where(
                Job.status == JobStatus.RUNNING.value,
                Job.children_total.is_(None),
                Job.heartbeat_at < stale_before,
            )
            .order_by(Job.job_id)
            .with_for_update(skip_locked=True)
        )
    )
    give_up = [job for job in stale if job.worker_losses >= settings.task_max_worker_losses]
    dead_letter_jobs(
        session,
        [
            Ending(
                Attempt(job.job_id, job.attempts),
                JobStatus.FAILED,
                job.result,
                f"worker lost {job.worker_losses + 1} times while running it (killed, out of "
                "memory or crashed); not sent again",
            )
            for job in give_up
        ],
    )
    orphans = [job for job in stale if job not in give_up]
    if not orphans:
        return []
    requeued = list(
        session.scalars(
            update(Job)
            .where(
                Job.job_id.in_([job.job_id for job in orphans]),
                Job.status == JobStatus.RUNNING.value,
            )
            .values(**back_to_pending(utc_now()), worker_losses=Job.worker_losses + 1)
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
    )
    publish_jobs(session, requeued, JobChange.STATUS)
    return [job.job_id for job in requeued]


def record_hard_timeout(
    session: Session,
    settings: Settings,
    job_id: uuid.UUID,
    limit_seconds: float,
    killed_at: datetime,
) -> str | None:
    """The worker running job `job_id` was killed at its hard time limit (called by the
    worker's main process when Celery kills the pool process). The job is sent again at once
    with the reason recorded, and dead-lettered once it has been killed more than
    TASK_MAX_HARD_TIMEOUTS times: a job that cannot finish in time is not re-run blindly.
    Only the attempt that was killed is affected: it last proved alive before `killed_at`
    (a newer attempt's claim refreshed the heartbeat after it). Returns what was done
    ("requeued", "dead_lettered"), or None if the job was not running that attempt."""
    # The caller is a worker's main process: it must not hang on a lock a stuck transaction
    # holds (the orphan check recovers the job then).
    session.execute(text("SET LOCAL lock_timeout = '5s'"))
    job = session.scalars(
        select(Job)
        .where(
            Job.job_id == job_id,
            Job.status == JobStatus.RUNNING.value,
            Job.heartbeat_at <= killed_at,
        )
        .with_for_update()
    ).first()
    if job is None:
        return None
    kills = job.hard_timeouts + 1
    reason = f"killed at its hard time limit ({limit_seconds:g} s)"
    session.execute(update(Job).where(Job.job_id == job_id).values(hard_timeouts=kills))
    if kills > settings.task_max_hard_timeouts:
        dead_letter_jobs(
            session,
            [
                Ending(
                    Attempt(job.job_id, job.attempts),
                    JobStatus.FAILED,
                    job.result,
                    f"{reason} {kills} times; not sent again",
                )
            ],
        )
        return "dead_lettered"
    requeued = session.scalars(
        update(Job)
        .where(Job.job_id == job_id)
        .values(**back_to_pending(utc_now()), error_message=f"{reason}; sent again (kill {kills})")
        .returning(Job)
        .execution_options(synchronize_session=False)
    ).all()
    publish_jobs(session, requeued, JobChange.STATUS)
    return "requeued"
