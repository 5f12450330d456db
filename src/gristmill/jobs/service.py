"""Starting, reading, cancelling, deleting and re-running jobs: what people (api, CLI) do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gristmill.accounts.service import get_account
from gristmill.clock import utc_now
from gristmill.errors import ConflictError, InvalidInputError, NotFoundError
from gristmill.jobs.cursor import newest_first_page
from gristmill.jobs.lifecycle import active_duplicate, cancel_job_tree, insert_jobs, job_row
from gristmill.jobs.models import DeadLetter, Job
from gristmill.jobs.types import (
    FINISHED_STATUSES,
    JobStatus,
    JobType,
)
from gristmill.scrapers import PLATFORMS


@dataclass(frozen=True)
class StartedJob:
    """A start's answer: the job, and whether this start created it (False: an identical job
    was already pending or running and is returned instead)."""

    job: Job
    created: bool


def create_job(
    session: Session,
    job_type: JobType,
    *,
    params: dict[str, Any] | None = None,
    account_key: str | None = None,
    retry_of_job_id: uuid.UUID | None = None,
    force: bool = False,
) -> StartedJob:
    """Insert a pending job, sent once the caller's transaction commits. Unless `force`, a
    job of the same type and parameters that is still pending or running is returned
    instead of starting a second one."""
    row = job_row(
        job_type,
        params=params,
        account_key=account_key,
        retry_of_job_id=retry_of_job_id,
        deduplicate=not force,
    )
    # The unique index decides between concurrent identical starts; the loser reads the
    # winner's job, unless it ended in between, then it tries again.
    for _ in range(3):
        inserted = insert_jobs(session, [row])
        if inserted:
            return StartedJob(inserted[0], created=True)
        existing = active_duplicate(session, row["dedupe_key"])
        if existing is not None:
            return StartedJob(existing, created=False)
    raise ConflictError(f"an identical {job_type.value} job keeps starting and ending; retry")


def start_scrape_account(session: Session, account_key: str, *, force: bool = False) -> StartedJob:
    account = get_account(session, account_key)
    if not account.active:
        raise ConflictError(f"account {account_key!r} is inactive")
    return create_job(
        session,
        JobType.SCRAPE_ACCOUNT,
        params={"account_key": account.key},
        account_key=account.key,
        force=force,
    )


def start_backfill_account(
    session: Session, account_key: str, days: int, *, force: bool = False
) -> StartedJob:
    if not 1 <= days <= 365:
        raise InvalidInputError("days must be between 1 and 365")
    account = get_account(session, account_key)
    return create_job(
        session,
        JobType.BACKFILL_ACCOUNT,
        params={"account_key": account.key, "days": days},
        account_key=account.key,
        force=force,
    )


def start_scrape_all(session: Session, *, force: bool = False) -> StartedJob:
    return create_job(session, JobType.SCRAPE_ALL, force=force)


def start_scrape_platform(session: Session, platform: str, *, force: bool = False) -> StartedJob:
    if platform not in PLATFORMS:
        raise InvalidInputError(
            f"unknown platform {platform!r}; expected one of: {', '.join(PLATFORMS)}"
        )
    return create_job(session, JobType.SCRAPE_PLATFORM, params={"platform": platform}, force=force)


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
