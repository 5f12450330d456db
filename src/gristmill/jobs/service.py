"""Reading, cancelling, deleting and re-running jobs: what people (api, CLI) do.

Starting jobs is in jobs/starts.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gristmill.clock import utc_now
from gristmill.errors import ConflictError, NotFoundError
from gristmill.jobs.cursor import newest_first_page
from gristmill.jobs.lifecycle import cancel_job_tree
from gristmill.jobs.models import DeadLetter, Job, JobRecord
from gristmill.jobs.starts import StartedJob, create_job
from gristmill.jobs.types import (
    FINISHED_STATUSES,
    JobStatus,
    JobType,
)


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


def cancel_job(session: Session, job_id: uuid.UUID) -> JobRecord:
    """A pending job is cancelled at once; a running one stops within about a second."""
    job = cancel_job_tree(session, job_id)
    if job is None:
        status = get_job(session, job_id).status
        raise ConflictError(
            f"job {job_id} is already {status}; only pending or running jobs can be cancelled"
        )
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


def retry_dead_letter(session: Session, job_id: uuid.UUID) -> StartedJob:
    """Run a dead-lettered job again as a new job; the old one stays for the record. If an
    identical job is already pending or running, that one is the re-run."""
    job = get_job(session, job_id)
    letter = session.get(DeadLetter, job_id, with_for_update=True)
    if letter is None or letter.requeued_at is not None:
        raise ConflictError(
            f"job {job_id} is not in the dead-letter queue; only dead-lettered jobs can be retried"
        )
    started = create_job(
        session,
        JobType(job.job_type),
        params=dict(job.params),
        account_key=job.account_key,
        retry_of_job_id=job.job_id,
    )
    letter.requeued_at = utc_now()
    letter.requeued_job_id = started.job.job_id
    session.flush()
    return started
