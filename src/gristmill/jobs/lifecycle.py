"""Job state transitions made by workers. Every write is guarded by the status it expects, so a
cancel from the api and a finishing worker can race without either overwriting the other."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from gristmill.clock import utc_now
from gristmill.events import JobChange, JobEvent, publish_after_commit
from gristmill.jobs.dispatch import JobMessage, send_after_commit
from gristmill.jobs.models import DeadLetter, Job
from gristmill.jobs.types import UNFINISHED_STATUSES, JobStatus
from gristmill.settings import Settings

MAX_LISTED_FAILURES = 1000
MAX_RETRY_AFTER_SECONDS = 1800.0


def job_event(job: Job, change: JobChange) -> JobEvent:
    return JobEvent(
        change=change,
        job_id=job.job_id,
        job_type=job.job_type,
        status=job.status,
        progress=job.progress,
        account_key=job.account_key,
        parent_job_id=job.parent_job_id,
    )


def publish_jobs(session: Session, jobs: Sequence[Job], change: JobChange) -> None:
    publish_after_commit(session, (job_event(job, change) for job in jobs))


def claim_jobs(session: Session, job_ids: Sequence[uuid.UUID]) -> list[Job]:
    """Move pending jobs to running. A job that is not pending (cancelled, already running
    elsewhere, finished) is not returned, so a duplicate delivery does nothing."""
    if not job_ids:
        return []
    now = utc_now()
    statement = (
        update(Job)
        .where(Job.job_id.in_(job_ids), Job.status == JobStatus.PENDING.value)
        .values(
            status=JobStatus.RUNNING.value,
            started_at=func.coalesce(Job.started_at, now),
            attempts=Job.attempts + 1,
            heartbeat_at=now,
        )
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    claimed = list(session.scalars(statement))
    publish_jobs(session, claimed, JobChange.STATUS)
    return claimed


def touch_heartbeats(session: Session, job_ids: Sequence[uuid.UUID]) -> None:
    session.execute(
        update(Job)
        .where(Job.job_id.in_(job_ids), Job.status == JobStatus.RUNNING.value)
        .values(heartbeat_at=utc_now())
        .execution_options(synchronize_session=False)
    )


def report_progress(
    session: Session,
    job_id: uuid.UUID,
    progress: int,
    result: dict[str, Any] | None,
    *,
    attempt: int,
) -> ProgressAck:
    """Record progress (it never goes down) for attempt `attempt` of a running job.

    The answer tells the worker whether to go on: `CANCELLED` when someone cancelled the job,
    `SUPERSEDED` when the job no longer belongs to this attempt (the orphan check gave it to
    another worker after this one missed its heartbeats)."""
    values: dict[str, Any] = {
        "progress": func.greatest(Job.progress, min(max(progress, 0), 100)),
        "heartbeat_at": utc_now(),
    }
    if result is not None:
        values["result"] = result
    job = session.scalars(
        update(Job)
        .where(_owned_by(job_id, attempt))
        .values(**values)
        .returning(Job)
        .execution_options(synchronize_session=False)
    ).first()
    if job is not None:
        publish_jobs(session, [job], JobChange.PROGRESS)
        return ProgressAck.RUNNING
    status = session.scalar(select(Job.status).where(Job.job_id == job_id))
    return ProgressAck.CANCELLED if status == JobStatus.CANCELLED.value else ProgressAck.SUPERSEDED


class ProgressAck(StrEnum):
    RUNNING = "running"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


def _owned_by(job_id: uuid.UUID, attempt: int) -> ColumnElement[bool]:
    # `attempts` is the fencing token: an attempt whose job was handed to another worker must
    # not overwrite what the new attempt writes.
    return and_(
        Job.job_id == job_id, Job.status == JobStatus.RUNNING.value, Job.attempts == attempt
    )


def finish_job(
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    result: dict[str, Any] | None,
    attempt: int,
    error_message: str | None = None,
    refresh: bool = True,
) -> bool:
    """End attempt `attempt` of a running job. If it was cancelled meanwhile, keep `cancelled`
    but store the partial result. Returns whether the job ended with `status`."""
    values: dict[str, Any] = {"status": status.value, "completed_at": utc_now()}
    if status is JobStatus.COMPLETED:
        values["progress"] = 100
    if result is not None:
        values["result"] = result
    if error_message is not None:
        values["error_message"] = error_message
    updated = session.scalars(
        update(Job)
        .where(_owned_by(job_id, attempt))
        .values(**values)
        .returning(Job)
        .execution_options(synchronize_session=False)
    ).first()
    if updated is None:
        if result is not None:
            session.execute(
                update(Job)
                .where(
                    Job.job_id == job_id,
                    Job.status == JobStatus.CANCELLED.value,
                    Job.attempts == attempt,
                )
                .values(result=result)
                .execution_options(synchronize_session=False)
            )
        return False
    publish_jobs(session, [updated], JobChange.STATUS)
    if refresh and updated.parent_job_id is not None:
        refresh_parent(session, updated.parent_job_id)
    return True


def retry_delay(settings: Settings, attempts: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter; a platform's Retry-After is honoured as the minimum."""
    ceiling = min(
        settings.retry_backoff_max_seconds,
        settings.retry_backoff_base_seconds * 2 ** max(attempts - 1, 0),
    )
    delay = ceiling * random.uniform(0.5, 1.0)
    if retry_after is not None:
        # Honoured, but bounded: a message held longer than the broker's visibility timeout
        # would be delivered twice, and "inf" is not a delay.
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return float(delay)


def schedule_retry(
    session: Session, job_id: uuid.UUID, error: str, *, attempt: int, delay: float
) -> bool:
    """Put a running job back to pending and send it again after `delay` seconds."""
    job = session.scalars(
        update(Job)
        .where(_owned_by(job_id, attempt))
        .values(
            status=JobStatus.PENDING.value,
            heartbeat_at=None,
            error_message=f"{error} (attempt {attempt} failed; retrying in {delay:.1f}s)",
        )
        .returning(Job)
        .execution_options(synchronize_session=False)
    ).first()
    if job is None:
        return False
    publish_jobs(session, [job], JobChange.STATUS)
    send_after_commit(session, JobMessage.of(job), countdown=delay)
    return True


def dead_letter_job(
    session: Session,
    job_id: uuid.UUID,
    error: str,
    *,
    result: dict[str, Any] | None,
    attempt: int,
    refresh: bool = True,
) -> None:
    """Fail the job for good and put it in the dead-letter queue."""
    finished = finish_job(
        session,
        job_id,
        JobStatus.FAILED,
        result=result,
        attempt=attempt,
        error_message=error,
        refresh=refresh,
    )
    if not finished:
        return
    job = session.get(Job, job_id)
    if job is None:
        return
    session.execute(
        insert(DeadLetter).values(
            job_id=job.job_id,
            job_type=job.job_type,
            account_key=job.account_key,
            error_message=error,
            attempts=job.attempts,
        )
    )


def refresh_parent(session: Session, parent_job_id: uuid.UUID) -> None:
    """Recompute a fan-out parent from its children; complete it when every child has ended.

    The parent row is locked first so that two batches finishing at once are serialised and the
    second one counts the first one's committed children.
    """
    parent = session.scalars(
        select(Job).where(Job.job_id == parent_job_id).with_for_update()
    ).first()
    if parent is None or parent.children_total is None:
        return
    counts: dict[str, int] = dict(
        session.execute(
            select(Job.status, func.count())
            .where(Job.parent_job_id == parent_job_id)
            .group_by(Job.status)
        ).all()
    )
    total = parent.children_total
    succeeded = counts.get(JobStatus.COMPLETED.value, 0)
    failed = counts.get(JobStatus.FAILED.value, 0)
    cancelled = counts.get(JobStatus.CANCELLED.value, 0)
    finished = succeeded + failed + cancelled
    result: dict[str, Any] = {
        "accounts_total": total,
        "succeeded": succeeded,
        "failed": failed,
        "cancelled": cancelled,
        "failures": [],
    }
    done = finished >= total
    if done or parent.status != JobStatus.RUNNING.value:
        failures = session.execute(
            select(Job.account_key, Job.error_message)
            .where(Job.parent_job_id == parent_job_id, Job.status == JobStatus.FAILED.value)
            .order_by(Job.account_key)
            .limit(MAX_LISTED_FAILURES)
        ).all()
        result["failures"] = [{"account_key": k, "error": e} for k, e in failures]
    parent.result = result
    if parent.status != JobStatus.RUNNING.value:
        return
    before = (parent.status, parent.progress)
    parent.progress = max(parent.progress, 100 * finished // total if total else 100)
    parent.heartbeat_at = utc_now()
    if done:
        if succeeded == 0 and failed > 0:
            parent.status = JobStatus.FAILED.value
            parent.error_message = f"all {failed} accounts failed"
        elif succeeded == 0 and cancelled > 0:
            parent.status = JobStatus.CANCELLED.value
        else:
            parent.status = JobStatus.COMPLETED.value
            parent.progress = 100
        parent.completed_at = utc_now()
    session.flush()
    if (parent.status, parent.progress) != before:
        change = JobChange.STATUS if parent.status != before[0] else JobChange.PROGRESS
        publish_jobs(session, [parent], change)


def requeue_orphaned_jobs(session: Session, settings: Settings) -> list[uuid.UUID]:
    """Send again every running job whose worker stopped sending heartbeats (it was killed),
    and finish fan-out parents whose children have all ended."""
    stale_before = utc_now() - timedelta(seconds=settings.job_heartbeat_timeout_seconds)
    stale = list(
        session.scalars(
            select(Job)
            .where(
                Job.status == JobStatus.RUNNING.value,
                Job.children_total.is_(None),
                Job.heartbeat_at < stale_before,
            )
            .with_for_update(skip_locked=True)
        )
    )
    orphans = []
    for job in stale:
        if job.attempts > settings.task_max_retries:
            # A job that keeps losing its worker (killed at its hard time limit, out of
            # memory, a crash it causes) would otherwise be sent again for ever.
            error = (
                f"worker lost {job.attempts} times (killed, crashed or over its hard time "
                "limit); not sent again"
            )
            dead_letter_job(session, job.job_id, error, result=job.result, attempt=job.attempts)
            continue
        job.status = JobStatus.PENDING.value
        job.heartbeat_at = None
        orphans.append(job)
    session.flush()
    publish_jobs(session, orphans, JobChange.STATUS)
    for job in orphans:
        send_after_commit(session, JobMessage.of(job))
    child = aliased(Job)
    settled_parents = session.scalars(
        select(Job.job_id).where(
            Job.status == JobStatus.RUNNING.value,
            Job.children_total.is_not(None),
            ~exists().where(
                and_(
                    child.parent_job_id == Job.job_id,
                    child.status.in_([s.value for s in UNFINISHED_STATUSES]),
                )
            ),
        )
    ).all()
    for parent_id in settled_parents:
        refresh_parent(session, parent_id)
    return [job.job_id for job in orphans]
