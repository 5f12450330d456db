"""Starting, reading, cancelling, deleting and re-running jobs: what people (api, CLI) do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gristmill.accounts.service import get_account
from gristmill.clock import utc_now
from gristmill.errors import ConflictError, InvalidInputError, NotFoundError
from gristmill.events import JobChange
from gristmill.jobs.cursor import newest_first_page
from gristmill.jobs.dispatch import JobMessage, send_after_commit
from gristmill.jobs.lifecycle import publish_jobs, refresh_parent
from gristmill.jobs.models import DeadLetter, Job
from gristmill.jobs.types import (
    FINISHED_STATUSES,
    JOB_TYPES,
    UNFINISHED_STATUSES,
    JobStatus,
    JobType,
)
from gristmill.scrapers import PLATFORMS


def create_job(
    session: Session,
    job_type: JobType,
    *,
    params: dict[str, Any] | None = None,
    account_key: str | None = None,
    job_id: uuid.UUID | None = None,
    retry_of_job_id: uuid.UUID | None = None,
    send: bool = True,
) -> Job:
    """Insert a pending job; its message is sent once the caller's transaction commits."""
    spec = JOB_TYPES[job_type]
    job = Job(
        job_id=job_id or uuid.uuid4(),
        job_type=job_type.value,
        status=JobStatus.PENDING.value,
        progress=0,
        params=params or {},
        account_key=account_key,
        queue=spec.queue.value,
        priority=spec.priority,
        attempts=0,
        retry_of_job_id=retry_of_job_id,
    )
    session.add(job)
    session.flush()
    session.refresh(job)
    publish_jobs(session, [job], JobChange.CREATED)
    if send:
        send_after_commit(session, JobMessage.of(job))
    return job


def start_scrape_account(session: Session, account_key: str) -> Job:
    account = get_account(session, account_key)
    if not account.active:
        raise ConflictError(f"account {account_key!r} is inactive")
    return create_job(
        session,
        JobType.SCRAPE_ACCOUNT,
        params={"account_key": account.key},
        account_key=account.key,
    )


def start_backfill_account(session: Session, account_key: str, days: int) -> Job:
    if not 1 <= days <= 365:
        raise InvalidInputError("days must be between 1 and 365")
    account = get_account(session, account_key)
    return create_job(
        session,
        JobType.BACKFILL_ACCOUNT,
        params={"account_key": account.key, "days": days},
        account_key=account.key,
    )


def start_scrape_all(session: Session) -> Job:
    return create_job(session, JobType.SCRAPE_ALL)


def start_scrape_platform(session: Session, platform: str) -> Job:
    if platform not in PLATFORMS:
        raise InvalidInputError(
            f"unknown platform {platform!r}; expected one of: {', '.join(PLATFORMS)}"
        )
    return create_job(session, JobType.SCRAPE_PLATFORM, params={"platform": platform})


def get_job(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> Job:
    job = session.get(Job, job_id, with_for_update=for_update, populate_existing=for_update)
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    return job


@dataclass(frozen=True)
class JobFilters:
    status: JobStatus | None = None
    job_type: JobType | None = None
    account_key: str | None = None
    parent_job_id: uuid.UUID | None = None


def list_jobs(
    session: Session, filters: JobFilters, *, limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    """Newest first, by keyset pagination so page N costs the same as page 1 at 1M rows."""
    query = select(Job)
    if filters.status is not None:
        query = query.where(Job.status == filters.status.value)
    if filters.job_type is not None:
        query = query.where(Job.job_type == filters.job_type.value)
    if filters.account_key is not None:
        query = query.where(Job.account_key == filters.account_key)
    if filters.parent_job_id is not None:
        query = query.where(Job.parent_job_id == filters.parent_job_id)
    return newest_first_page(session, query, Job.created_at, Job.job_id, limit=limit, cursor=cursor)


def cancel_job(session: Session, job_id: uuid.UUID) -> Job:
    """A pending job is cancelled at once; a running one stops at its next checkpoint."""
    # Children first, in id order, then the job itself: workers lock a child before its
    # parent, so taking them in the same order cannot deadlock.
    session.execute(
        select(Job.job_id)
        .where(Job.parent_job_id == job_id, Job.status.in_(list(UNFINISHED_STATUSES)))
        .order_by(Job.job_id)
        .with_for_update()
    )
    job = get_job(session, job_id, for_update=True)
    if job.status not in UNFINISHED_STATUSES:
        raise ConflictError(
            f"job {job_id} is already {job.status}; only pending or running jobs can be cancelled"
        )
    now = utc_now()
    job.status = JobStatus.CANCELLED.value
    job.completed_at = now
    children = session.scalars(
        update(Job)
        .where(Job.parent_job_id == job_id, Job.status.in_(list(UNFINISHED_STATUSES)))
        .values(status=JobStatus.CANCELLED.value, completed_at=now)
        .returning(Job)
        .execution_options(synchronize_session=False)
    ).all()
    session.flush()
    publish_jobs(session, [job, *children], JobChange.STATUS)
    if job.parent_job_id is not None:
        refresh_parent(session, job.parent_job_id)
    session.refresh(job)
    return job


def delete_job(session: Session, job_id: uuid.UUID) -> None:
    job = get_job(session, job_id, for_update=True)
    if job.status not in FINISHED_STATUSES:
        raise ConflictError(
            f"job {job_id} is {job.status}; cancel it first, only finished jobs can be deleted"
        )
    if job.parent_job_id is not None:
        parent_status = session.scalar(select(Job.status).where(Job.job_id == job.parent_job_id))
        if parent_status not in FINISHED_STATUSES:
            raise ConflictError(
                f"job {job_id} is part of job {job.parent_job_id}, which is still "
                f"{parent_status}; delete the parent once it has finished"
            )
    session.delete(job)
    session.flush()


def list_dead_letters(
    session: Session, *, limit: int, cursor: str | None
) -> tuple[list[DeadLetter], str | None]:
    query = select(DeadLetter).where(DeadLetter.requeued_at.is_(None))
    return newest_first_page(
        session, query, DeadLetter.created_at, DeadLetter.job_id, limit=limit, cursor=cursor
    )


def retry_dead_letter(session: Session, job_id: uuid.UUID) -> Job:
    """Run a dead-lettered job again as a new job; the old one stays for the record."""
    job = get_job(session, job_id)
    letter = session.get(DeadLetter, job_id, with_for_update=True)
    if letter is None or letter.requeued_at is not None:
        raise ConflictError(
            f"job {job_id} is not in the dead-letter queue; only dead-lettered jobs can be retried"
        )
    new_job = create_job(
        session,
        JobType(job.job_type),
        params=dict(job.params),
        account_key=job.account_key,
        retry_of_job_id=job.job_id,
    )
    letter.requeued_at = utc_now()
    letter.requeued_job_id = new_job.job_id
    session.flush()
    return new_job
