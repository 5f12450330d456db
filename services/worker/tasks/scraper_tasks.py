"""Scraping tasks. Bodies live in the core (gristmill.scraping.service); these only name them."""

from __future__ import annotations

from gristmill.jobs.runtime import JobContext, JobResult
from gristmill.jobs.tasking import job_task
from gristmill.jobs.types import JobType
from gristmill.scraping import service


@job_task(JobType.SCRAPE_ACCOUNT)
def scrape_account(ctx: JobContext, account_key: str) -> JobResult:
    return service.scrape_account(ctx, account_key)


@job_task(JobType.SCRAPE_ALL)
def scrape_all_accounts(ctx: JobContext) -> JobResult:
    return service.scrape_accounts(ctx)


@job_task(JobType.SCRAPE_PLATFORM)
def scrape_platform(ctx: JobContext, platform: str) -> JobResult:
    return service.scrape_accounts(ctx, platform)


@job_task(JobType.BACKFILL_ACCOUNT)
def backfill_account(ctx: JobContext, account_key: str, days: int) -> JobResult:
    return service.backfill_account(ctx, account_key, days)
