"""Every job state transition, in one place: create, claim, progress, end, retry, dead-letter.

Single jobs, fan-out batches and the api all go through these functions; nothing else writes a
job's status. Each write is guarded by the status it expects, and a worker's writes are fenced by
the attempt that owns the job (`attempts`), so a cancel, a finishing worker and an attempt that
was presumed dead can race without one overwriting another. Callers own the transaction: these
functions only flush, and register what must happen after the commit (job-change events, sending
messages).
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    Uuid,
    and_,
    case,
    column,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from gristmill.clock import utc_now
from gristmill.events import JobChange, publish_jobs
from gristmill.jobs import outbox
from gristmill.jobs.models import ACTIVE_DEDUPE_PREDICATE, DeadLetter, Job
from gristmill.jobs.parents import count_ended_children
from gristmill.jobs.types import (
    CHILD_PRIORITY,
    CHILD_QUEUE,
    JOB_TYPES,
    UNFINISHED_STATUSES,
    Attempt,
    JobStatus,
    JobType,
)
from gristmill.settings import Settings

MAX_RETRY_AFTER_SECONDS = 1800.0


# --- building and inserting jobs -------------------------------------------------------------


def dedupe_key(job_type: JobType, params: dict[str, Any]) -> str:
    """The identity of a start: same type and parameters, same key."""
    canonical = json.dumps([job_type.value, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def job_row(
    job_type: JobType,
    *,
    params: dict[str, Any] | None = None,
    account_key: str | None = None,
    parent_job_id: uuid.UUID | None = None,
    retry_of_job_id: uuid.UUID | None = None,
    deduplicate: bool = False,
) -> dict[str, Any]:
    """The one way to build a new pending job's row (single starts and fan-out children)."""
    spec = JOB_TYPES[job_type]
    params = params or {}
    child_scrape = parent_job_id is not None and job_type is JobType.SCRAPE_ACCOUNT
    return {
        "job_id": uuid.uuid4(),
        "job_type": job_type.value,
        "status": JobStatus.PENDING.value,
        "progress": 0,
        "params": params,
        "account_key": account_key,
        "parent_job_id": parent_job_id,
        "retry_of_job_id": retry_of_job_id,
        # Fan-out children go to the bulk queue, behind what people start by hand.
        "queue": (CHILD_QUEUE if child_scrape else spec.queue).value,
        "priority": CHILD_PRIORITY if parent_job_id is not None else spec.priority,
        "attempts": 0,
        "dedupe_key": dedupe_key(job_type, params) if deduplicate else None,
    }


def insert_jobs(session: Session, rows: Sequence[dict[str, Any]]) -> list[Job]:
    """Insert pending jobs and send them once the transaction commits.

    A row whose `dedupe_key` matches a job that is still pending or running is skipped (the
    partial unique index decides, so two concurrent starts cannot both get in); the returned
    list holds only the rows inserted.
    """
    if not rows:
        return []
    statement = (
        pg_insert(Job)
        .on_conflict_do_nothing(
            index_elements=[Job.dedupe_key], index_where=text(ACTIVE_DEDUPE_PREDICATE)
        )
        .returning(Job)
    )
    jobs = list(session.scalars(statement, list(rows)))
    publish_jobs(session, jobs, JobChange.CREATED)
    outbox.send_after_commit(session, jobs)
    return jobs


# --- a worker's transitions ------------------------------------------------------------------


def claim_jobs(session: Session, job_ids: Sequence[uuid.UUID]) -> list[Job]:
    """Move pending jobs to running. A job that is not pending (cancelled, already running
    elsewhere, finished) is not returned, so a duplicate delivery does nothing."""
    if not job_ids:
        return []
    now = utc_now()
    claimed = list(
        session.scalars(
            update(Job)
            .where(
                Job.job_id.in_(job_ids),
                Job.status == JobStatus.PENDING.value,
                # A stray early delivery of a job waiting out its retry backoff does not run
                # it; the relay sends it when it is due.
                or_(Job.run_after.is_(None), Job.run_after <= now),
            )
            .values(
                status=JobStatus.RUNNING.value,
                started_at=func.coalesce(Job.started_at, now),
                attempts=Job.attempts + 1,
                heartbeat_at=now,
            )
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
    )
    publish_jobs(session, claimed, JobChange.STATUS)
    return claimed


def _owned(attempts: Sequence[Attempt]) -> Any:
    return and_(
        tuple_(Job.job_id, Job.attempts).in_([(a.job_id, a.attempt) for a in attempts]),
        Job.status == JobStatus.RUNNING.value,
    )


def still_owned(session: Session, attempts: Sequence[Attempt], *, beat: bool) -> set[uuid.UUID]:
    """Which of these attempts still own a running job (optionally refreshing heartbeats).

    The others were cancelled or handed to another worker: their work must stop."""
    if not attempts:
        return set()
    if beat:
        rows = session.scalars(
            update(Job)
            .where(_owned(attempts))
            .values(heartbeat_at=utc_now())
            .returning(Job.job_id)
            .execution_options(synchronize_session=False)
        )
    else:
        rows = session.scalars(select(Job.job_id).where(_owned(attempts)))
    return set(rows)


def report_progress(
    session: Session, owner: Attempt, progress: int, result: dict[str, Any] | None
) -> bool:
    """Record progress (it never goes down); False if the attempt no longer owns the job."""
    changes: dict[str, Any] = {
        "progress": func.greatest(Job.progress, min(max(progress, 0), 100)),
        "heartbeat_at": utc_now(),
    }
    if result is not None:
        changes["result"] = result
    job = session.scalars(
        update(Job)
        .where(_owned([owner]))
        .values(**changes)
        .returning(Job)
        .execution_options(synchronize_session=False)
    ).first()
    if job is None:
        return False
    publish_jobs(session, [job], JobChange.PROGRESS)
    return True


@dataclass(frozen=True)
class Ending:
    """How one attempt ends its job."""

    owner: Attempt
    status: JobStatus
    result: dict[str, Any] | None = None
    error: str | None = None


_ENDINGS = values(
    column("job_id", Uuid),
    column("attempt", Integer),
    column("status", String),
    column("result", JSONB),
    column("error", String),
    name="ending",
)


def finish_jobs(session: Session, endings: Sequence[Ending]) -> list[Job]:
    """End running jobs in one statement; returns the jobs this call really ended.

    A job that was cancelled or taken over meanwhile is left alone and not returned, so the
    caller writes nothing more for it. Fan-out parents of the ended jobs are updated."""
    if not endings:
        return []
    rows = _ENDINGS.data(
        [
            (e.owner.job_id, e.owner.attempt, e.status.value, e.result, e.error)
            for e in sorted(endings, key=lambda e: e.owner.job_id)
        ]
    )
    completed = JobStatus.COMPLETED.value
    ended = list(
        session.scalars(
            update(Job)
            .where(
                Job.job_id == rows.c.job_id,
                Job.attempts == rows.c.attempt,
                Job.status == JobStatus.RUNNING.value,
            )
            .values(
                status=rows.c.status,
                completed_at=utc_now(),
                progress=case((rows.c.status == completed, 100), else_=Job.progress),
                result=func.coalesce(rows.c.result, Job.result),
                error_message=func.coalesce(rows.c.error, Job.error_message),
                heartbeat_at=None,
            )
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
    )
    publish_jobs(session, ended, JobChange.STATUS)
    count_ended_children(session, ended)
    return ended


def dead_letter_jobs(session: Session, endings: Sequence[Ending]) -> list[Job]:
    """Fail jobs for good and put them in the dead-letter queue."""
    failed = [Ending(e.owner, JobStatus.FAILED, e.result, e.error) for e in endings]
    ended = finish_jobs(session, failed)
    if ended:
        session.execute(
            insert(DeadLetter),
            [
                {
                    "job_id": job.job_id,
                    "job_type": job.job_type,
                    "account_key": job.account_key,
                    "error_message": job.error_message or "failed",
                    "attempts": job.attempts,
                }
                for job in ended
            ],
        )
    return ended


@dataclass(frozen=True)
class Postponement:
    """Send the job again after `delay` seconds; `spends_retry` is False for a deferral."""

    owner: Attempt
    error: str
    delay: float
    spends_retry: bool = True


def postpone_jobs(session: Session, postponements: Sequence[Postponement]) -> list[Job]:
    """Put running jobs back to pending; the outbox relay sends each once its delay is over."""
    if not postponements:
        return []
    now = utc_now()
    rows = _POSTPONEMENTS.data(
        [
            (
                p.owner.job_id,
                p.owner.attempt,
                now + timedelta(seconds=p.delay),
                p.error,
                1 if p.spends_retry else 0,
            )
            for p in sorted(postponements, key=lambda p: p.owner.job_id)
        ]
    )
    jobs = list(
        session.scalars(
            update(Job)
            .where(
                Job.job_id == rows.c.job_id,
                Job.attempts == rows.c.attempt,
                Job.status == JobStatus.RUNNING.value,
            )
            .values(
                status=JobStatus.PENDING.value,
                heartbeat_at=None,
                enqueued_at=None,
                run_after=rows.c.run_after,
                retries=Job.retries + rows.c.spent,
                error_message=rows.c.error,
            )
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
    )
    publish_jobs(session, jobs, JobChange.STATUS)
    return jobs


_POSTPONEMENTS = values(
    column("job_id", Uuid),
    column("attempt", Integer),
    column("run_after", DateTime(timezone=True)),
    column("error", String),
    column("spent", Integer),
    name="postponement",
)


def retry_delay(settings: Settings, retries: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter for the `retries`-th retry (1-based); a platform's
    Retry-After is honoured as the minimum."""
    ceiling = min(
        settings.retry_backoff_max_seconds,
        settings.retry_backoff_base_seconds * 2 ** max(retries - 1, 0),
    )
    delay = ceiling * random.uniform(0.5, 1.0)
    if retry_after is not None:
        # Honoured, but bounded: "inf" is not a delay, and a job parked for days would look
        # lost to whoever watches it.
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return float(delay)


# --- people's transitions ----------------------------------------------------------------


def cancel_job_tree(session: Session, job_id: uuid.UUID) -> Job | None:
    """Cancel a pending or running job and its unfinished children; None if it had ended.

    A pending job is cancelled at once; a running one stops within about a second (its worker
    notices) and nothing more is written for it."""
    unfinished = [s.value for s in UNFINISHED_STATUSES]
    # Children first, in id order, then the job, then its parent: the order workers lock them.
    session.execute(
        select(Job.job_id)
        .where(Job.parent_job_id == job_id, Job.status.in_(unfinished))
        .order_by(Job.job_id)
        .with_for_update()
    )
    cancelled = {
        "status": JobStatus.CANCELLED.value,
        "completed_at": utc_now(),
        "heartbeat_at": None,
    }
    job = session.scalars(
        update(Job)
        .where(Job.job_id == job_id, Job.status.in_(unfinished))
        .values(**cancelled)
        .returning(Job)
        .execution_options(synchronize_session=False)
    ).first()
    if job is None:
        return None
    children = list(
        session.scalars(
            update(Job)
            .where(Job.parent_job_id == job_id, Job.status.in_(unfinished))
            .values(**cancelled)
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
    )
    publish_jobs(session, [job, *children], JobChange.STATUS)
    count_ended_children(session, children)
    count_ended_children(session, [job])
    return job
