from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse

from gristmill.jobs import service, starts
from gristmill.jobs.cursor import MAX_PAGE_SIZE
from gristmill.jobs.schemas import BackfillRequest, DeadLetterPage, DeadLetterRead, JobPage, JobRead
from gristmill.jobs.types import JobStatus, JobType
from services.api import idempotency as idempotent
from services.api.deps import IntakeDep, ReadAuth, SessionDep, WriteAuth
from services.api.idempotency import IdempotencyDep

router = APIRouter(prefix="/api", tags=["jobs"])

ACCEPTED = status.HTTP_202_ACCEPTED


ForceQuery = Annotated[
    bool,
    Query(description="Start a new job even if an identical one is pending or running."),
]
_DUPLICATE: dict[int | str, dict[str, Any]] = {
    200: {
        "model": JobRead,
        "description": "An identical job is already pending or running: that job is returned "
        "and no new one is started (pass force=true to start one anyway).",
    }
}


_STARTS: dict[str, Any] = {
    "dependencies": [WriteAuth],
    "status_code": ACCEPTED,
    "response_model": JobRead,
    "responses": _DUPLICATE,
}


@router.post("/jobs/scrape-all", **_STARTS)
async def start_scrape_all(
    intake: IntakeDep, key: IdempotencyDep, force: ForceQuery = False
) -> JSONResponse:
    """Scrape every active account: one child job per account, spread over the workers."""
    return await idempotent.start(intake, starts.scrape_all(force=force), key)


@router.post("/run-scraper", deprecated=True, **_STARTS)
async def run_scraper(
    intake: IntakeDep, key: IdempotencyDep, force: ForceQuery = False
) -> JSONResponse:
    """Alias of `POST /api/jobs/scrape-all`, kept for existing clients."""
    return await idempotent.start(intake, starts.scrape_all(force=force), key)


@router.post("/jobs/scrape-account/{account_key}", **_STARTS)
async def start_scrape_account(
    account_key: str, intake: IntakeDep, key: IdempotencyDep, force: ForceQuery = False
) -> JSONResponse:
    return await idempotent.start(intake, starts.scrape_account(account_key, force=force), key)


@router.post("/jobs/scrape-platform/{platform}", **_STARTS)
async def start_scrape_platform(
    platform: str, intake: IntakeDep, key: IdempotencyDep, force: ForceQuery = False
) -> JSONResponse:
    return await idempotent.start(intake, starts.scrape_platform(platform, force=force), key)


@router.post("/jobs/backfill-account/{account_key}", **_STARTS)
async def start_backfill_account(
    account_key: str,
    body: BackfillRequest,
    intake: IntakeDep,
    key: IdempotencyDep,
    force: ForceQuery = False,
) -> JSONResponse:
    """Collect per-day activity for the `days` UTC dates ending today (1-365)."""
    request = starts.backfill_account(account_key, body.days, force=force)
    return await idempotent.start(intake, request, key)


@router.get("/jobs", dependencies=[ReadAuth])
def list_jobs(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status: JobStatus | None = None,
    job_type: JobType | None = None,
    account_key: Annotated[str | None, Query(max_length=64)] = None,
    parent_job_id: uuid.UUID | None = None,
) -> JobPage:
    """Newest first. Pass `next_cursor` back as `cursor` for the next page (null on the last)."""
    filters = service.JobFilters(status, job_type, account_key, parent_job_id)
    jobs, next_cursor = service.list_jobs(session, filters, limit=limit, cursor=cursor)
    return JobPage(items=[JobRead.model_validate(job) for job in jobs], next_cursor=next_cursor)


@router.get("/jobs/{job_id}", dependencies=[ReadAuth])
def get_job(job_id: uuid.UUID, session: SessionDep) -> JobRead:
    return JobRead.model_validate(service.get_job(session, job_id))


@router.post("/jobs/{job_id}/cancel", dependencies=[WriteAuth])
def cancel_job(job_id: uuid.UUID, session: SessionDep) -> JobRead:
    """Pending jobs are cancelled at once; running ones stop at their next checkpoint, keeping
    partial results. Cancelling a parent cancels its unfinished children."""
    return JobRead.model_validate(service.cancel_job(session, job_id))


@router.delete("/jobs/{job_id}", dependencies=[WriteAuth], status_code=status.HTTP_204_NO_CONTENT)
def delete_job(job_id: uuid.UUID, session: SessionDep) -> None:
    """Only finished jobs (completed, failed, cancelled) can be deleted."""
    service.delete_job(session, job_id)


@router.post("/jobs/{job_id}/retry", **_STARTS)
def retry_job(job_id: uuid.UUID, session: SessionDep, key: IdempotencyDep) -> JSONResponse:
    """Run a dead-lettered job again as a new job (`retry_of_job_id` points at the old one)."""
    return idempotent.start_in_session(
        session, key, lambda: service.retry_dead_letter(session, job_id)
    )


@router.get("/dead-letters", dependencies=[ReadAuth])
def list_dead_letters(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DeadLetterPage:
    """Jobs that failed for good (retries exhausted or an unexpected error), newest first."""
    letters, next_cursor = service.list_dead_letters(session, limit=limit, cursor=cursor)
    return DeadLetterPage(
        items=[DeadLetterRead.model_validate(letter) for letter in letters],
        next_cursor=next_cursor,
    )
