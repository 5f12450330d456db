"""Starting jobs: what a start asks for, and the one function that starts any number of them.

`start_jobs(session, requests)` validates and inserts a whole list of starts in the caller's
transaction with a handful of statements, whatever the list's length: the api's group commit
(jobs/intake.py) passes many concurrent requests at once, the CLI, the scheduler and
dead-letter re-runs pass one. Unless forced, a start identical to a job still pending or
running (same type and parameters) returns that job instead of starting another.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gristmill.accounts.models import Account
from gristmill.errors import ConflictError, DomainError, InvalidInputError, NotFoundError, quoted
from gristmill.jobs import idempotency
from gristmill.jobs.lifecycle import insert_jobs, job_row
from gristmill.jobs.models import ACTIVE_DEDUPE_PREDICATE, Job, JobRecord
from gristmill.jobs.schemas import JobRead
from gristmill.jobs.types import JobType
from gristmill.scrapers import PLATFORMS

MAX_BACKFILL_DAYS = 365


@dataclass(frozen=True)
class StartRequest:
    """One start. `account_key`, when set, must name an account (active, if `needs_active`)."""

    job_type: JobType
    params: dict[str, Any] = field(default_factory=dict)
    account_key: str | None = None
    needs_active: bool = False
    force: bool = False
    retry_of_job_id: uuid.UUID | None = None
    # (principal, key) of the request's Idempotency-Key: its answer is recorded with the job.
    idempotency_key: tuple[str, str] | None = None


@dataclass(frozen=True)
class StartedJob:
    """A start's answer: the job, and whether this start created it (False: an identical job
    was already pending or running and is returned instead)."""

    job: JobRecord
    created: bool

    @property
    def status_code(self) -> int:
        """202 Accepted for a new job, 200 for the identical job already under way."""
        return 202 if self.created else 200

    def body(self) -> dict[str, Any]:
        return JobRead.model_validate(self.job).model_dump(mode="json")


def scrape_account(account_key: str, *, force: bool = False) -> StartRequest:
    return StartRequest(
        JobType.SCRAPE_ACCOUNT,
        {"account_key": account_key},
        account_key=account_key,
        needs_active=True,
        force=force,
    )


def backfill_account(account_key: str, days: int, *, force: bool = False) -> StartRequest:
    if not 1 <= days <= MAX_BACKFILL_DAYS:
        raise InvalidInputError(f"days must be between 1 and {MAX_BACKFILL_DAYS}")
    return StartRequest(
        JobType.BACKFILL_ACCOUNT,
        {"account_key": account_key, "days": days},
        account_key=account_key,
        force=force,
    )


def scrape_all(*, force: bool = False) -> StartRequest:
    return StartRequest(JobType.SCRAPE_ALL, force=force)


def scrape_platform(platform: str, *, force: bool = False) -> StartRequest:
    if platform not in PLATFORMS:
        raise InvalidInputError(
            f"unknown platform {platform!r}; expected one of: {', '.join(PLATFORMS)}"
        )
    return StartRequest(JobType.SCRAPE_PLATFORM, {"platform": platform}, force=force)


def start_jobs(
    session: Session, requests: Sequence[StartRequest]
) -> list[StartedJob | DomainError]:
    """Start every request in the caller's transaction; each gets its job or the domain
    error that refused it (an unknown or inactive account), in the requests' order."""
    outcomes: list[StartedJob | DomainError | None] = [None] * len(requests)
    rows = {
        index: job_row(
            request.job_type,
            params=request.params,
            account_key=request.account_key,
            retry_of_job_id=request.retry_of_job_id,
            deduplicate=not request.force,
        )
        for index, request in enumerate(requests)
    }
    # One statement inserts the rows whose account is fit to start (the common case: one round
    # trip). A row left out was refused for its account, or lost to an identical job still
    # under way through the partial unique index (in this batch or another transaction): it
    # gets that job, or, if the job ended meanwhile, tries again.
    for _ in range(3):
        waiting = {index: row for index, row in rows.items() if outcomes[index] is None}
        if not waiting:
            break
        inserted = {
            job.job_id: job
            for job in insert_jobs(
                session,
                list(waiting.values()),
                needs_active=[requests[index].needs_active for index in waiting],
            )
        }
        skipped = {index: row for index, row in waiting.items() if row["job_id"] not in inserted}
        accounts = _account_states(session, [requests[index] for index in skipped])
        duplicates = _active_duplicates(session, [row["dedupe_key"] for row in skipped.values()])
        for index, row in waiting.items():
            if row["job_id"] in inserted:
                outcomes[index] = StartedJob(inserted[row["job_id"]], created=True)
            elif (refused := _refusal(requests[index], accounts)) is not None:
                outcomes[index] = refused
            elif row["dedupe_key"] in duplicates:
                outcomes[index] = StartedJob(duplicates[row["dedupe_key"]], created=False)
            else:
                row["job_id"] = uuid.uuid4()
    answers = [
        outcome
        if outcome is not None
        else ConflictError("an identical job keeps starting and ending; retry the request")
        for outcome in outcomes
    ]
    for request, answer in zip(requests, answers, strict=True):
        if request.idempotency_key is not None and isinstance(answer, StartedJob):
            principal, key = request.idempotency_key
            idempotency.record(session, principal, key, answer.status_code, answer.body())
    return answers


def create_job(
    session: Session,
    job_type: JobType,
    *,
    params: dict[str, Any] | None = None,
    account_key: str | None = None,
    retry_of_job_id: uuid.UUID | None = None,
    force: bool = False,
) -> StartedJob:
    """Start one job of `job_type` (scheduled runs, re-runs, tests); raises if refused."""
    request = StartRequest(
        job_type,
        params or {},
        account_key=account_key,
        force=force,
        retry_of_job_id=retry_of_job_id,
    )
    return start_one(session, request)


def start_one(session: Session, request: StartRequest) -> StartedJob:
    (outcome,) = start_jobs(session, [request])
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


def _account_states(session: Session, requests: Sequence[StartRequest]) -> dict[str, bool]:
    keys = {request.account_key for request in requests if request.account_key is not None}
    if not keys:
        return {}
    rows = session.execute(select(Account.key, Account.active).where(Account.key.in_(keys)))
    return {key: bool(active) for key, active in rows}


def _refusal(request: StartRequest, accounts: dict[str, bool]) -> DomainError | None:
    key = request.account_key
    if key is None:
        return None
    if key not in accounts:
        return NotFoundError(f"account {quoted(key)} not found")
    if request.needs_active and not accounts[key]:
        return ConflictError(f"account {quoted(key)} is inactive")
    return None


def _active_duplicates(session: Session, keys: list[str | None]) -> dict[str, JobRecord]:
    wanted = [key for key in keys if key is not None]
    if not wanted:
        return {}
    jobs = session.scalars(
        select(Job).where(Job.dedupe_key.in_(wanted), text(ACTIVE_DEDUPE_PREDICATE))
    )
    return {job.dedupe_key: job for job in jobs if job.dedupe_key is not None}
