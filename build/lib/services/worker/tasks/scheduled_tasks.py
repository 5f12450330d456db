"""Tasks that Celery beat starts (see services/scheduler/schedule.py)."""

from __future__ import annotations

from gristmill.jobs.runtime import JobContext, JobResult
from gristmill.jobs.tasking import job_task
from gristmill.jobs.types import JobType
from gristmill.maintenance import service as maintenance
from gristmill.scrape_jobs import fanout


@job_task(JobType.DAILY_SCRAPE_ALL)
def daily_scrape_all(ctx: JobContext) -> JobResult:
    return fanout.scrape_accounts(ctx)


@job_task(JobType.BACKFILL_CHECK)
def backfill_check(ctx: JobContext) -> JobResult:
    return fanout.backfill_gaps(ctx)


@job_task(JobType.CLEANUP_OLD_JOBS)
def cleanup_old_jobs(ctx: JobContext) -> JobResult:
    return maintenance.cleanup_old_jobs(ctx)


@job_task(JobType.HEALTH_CHECK)
def health_check(ctx: JobContext) -> JobResult:
    return maintenance.check_dependencies(ctx)
