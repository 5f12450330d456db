"""Plain factory functions for rows the tests need."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gristmill.accounts.models import Account
from gristmill.jobs.models import Job
from gristmill.jobs.types import JOB_TYPES, JobStatus, JobType


def make_account(
    session: Session,
    key: str = "alice",
    *,
    platform: str = "mastodon",
    handle: str | None = None,
    base_url: str | None = None,
    active: bool = True,
) -> Account:
    account = Account(
        key=key,
        platform=platform,
        handle=handle or (f"{key}@fake.social" if platform == "mastodon" else f"{key}.bsky.social"),
        base_url=base_url,
        active=active,
    )
    session.add(account)
    session.flush()
    return account


def make_job(
    session: Session,
    job_type: JobType = JobType.SCRAPE_ACCOUNT,
    *,
    status: JobStatus = JobStatus.PENDING,
    account_key: str | None = None,
    created_at: datetime | None = None,
    completed_at: datetime | None = None,
    parent_job_id: uuid.UUID | None = None,
    params: dict[str, Any] | None = None,
) -> Job:
    spec = JOB_TYPES[job_type]
    job = Job(
        job_id=uuid.uuid4(),
        job_type=job_type.value,
        status=status.value,
        progress=100 if status is JobStatus.COMPLETED else 0,
        params=params or ({"account_key": account_key} if account_key else {}),
        account_key=account_key,
        queue=spec.queue.value,
        priority=spec.priority,
        attempts=0,
        parent_job_id=parent_job_id,
        completed_at=completed_at,
    )
    if created_at is not None:
        job.created_at = created_at
    session.add(job)
    session.flush()
    return job
