from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from gristmill.jobs import service, starts
from gristmill.jobs.cursor import MAX_PAGE_SIZE
from gristmill.jobs.schemas import BackfillRequest, DeadLetterPage, DeadLetterRead, JobPage, JobRead
from gristmill.jobs.starts import StartedJob
from gristmill.jobs.types import JobStatus, JobType
from services.api.deps import IntakeDep, ReadAuth, SessionDep, WriteAuth

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


def _started(started: StartedJob, response: Response) -> JobRead:
    response.headers["Location"] = f"/api/jobs/{started.job.job_id}"
    if not started.created:
        response.status_code = status.HTTP_200_OK
    return JobRead.model_validate(started.job)


@router.post(
    "/jobs/scrape-all", dependencies=[WriteAuth], status_code=ACCEPTED, responses=_DUPLICATE
)
async def start_scrape_all(
    intake: IntakeDep, response: Response, force: ForceQuery = False
) -> JobRead:
    """Scrape every active account: one child job per account, spread over the workers."""
    return _started(await intake.start(starts.scrape_all(force=force)), response)


@router.post(
    "/run-scraper",
    dependencies=[WriteAuth],
    deprecated=True,
    status_code=ACCEPTED,
    responses=_DUPLICATE,
)
async def run_scraper(intake: IntakeDep, response: Response, force: ForceQuery = False) -> JobRead:
    """Alias of `POST /api/jobs/scrape-all`, kept for existing clients."""
    return _started(await intake.start(starts.scrape_all(force=force)), response)


@router.post(
    "/jobs/scrape-account/{account_key}",
    dependencies=[WriteAuth],
    status_code=ACCEPTED,
    responses=_DUPLICATE,
)
async def start_scrape_account(
    account_key: str, intake: IntakeDep, response: Response, force: ForceQuery = False
) -> JobRead:
    return _started(await intake.start(starts.scrape_account(account_key, force=force)), response)


@router.post(
    "/jobs/scrape-platform/{platform}",
    dependencies=[WriteAuth],
    status_code=ACCEPTED,
    responses=_DUPLICATE,
)
async def start_scrape_platform(
    platform: str, intake: IntakeDep, response: Response, force: ForceQuery = False
) -> JobRead:
    return _started(await intake.start(starts.scrape_platform(platform, force=force)), response)


@router.post(
    "/jobs/backfill-account/{account_key}",
    dependencies=[WriteAuth],
    status_code=ACCEPTED,
    responses=_DUPLICATE,
)
async def start_backfill_account(
    account_key: str,
    body: BackfillRequest,
    intake: IntakeDep,
    response: Response,
    force: ForceQuery = False,
) -> JobRead:
    """Collect per-day activity for the `days` UTC dates ending today (1-365)."""
    request = starts.backfill_account(account_key, body.days, force=force)
    return _started(await intake.start(request), response)


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


@router.post(
    "/jobs/{job_id}/retry", dependencies=[WriteAuth], status_code=ACCEPTED, responses=_DUPLICATE
)
def retry_job(job_id: uuid.UUID, session: SessionDep, response: Response) -> JobRead:
    """Run a dead-lettered job again as a new job (`retry_of_job_id` points at the old one)."""
    return _started(service.retry_dead_letter(session, job_id), response)


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
