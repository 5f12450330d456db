"""Scraping tasks. Bodies live in the core (gristmill.scrape_jobs); these only name them."""

from __future__ import annotations

from gristmill.jobs.runtime import JobContext, JobResult
from gristmill.jobs.tasking import job_task
from gristmill.jobs.types import JobType
from gristmill.scrape_jobs import fanout, single
from gristmill.scrape_jobs.accounts import LoadedAccount, load_account


@job_task(JobType.SCRAPE_ACCOUNT, load=load_account)
def scrape_account(ctx: JobContext, account_key: str, account: LoadedAccount) -> JobResult:
    return single.scrape_account(ctx, account_key, account)


@job_task(JobType.SCRAPE_ALL)
def scrape_all_accounts(ctx: JobContext) -> JobResult:
    return fanout.scrape_accounts(ctx)


@job_task(JobType.SCRAPE_PLATFORM)
def scrape_platform(ctx: JobContext, platform: str) -> JobResult:
    return fanout.scrape_accounts(ctx, platform)


@job_task(JobType.BACKFILL_ACCOUNT, load=load_account)
def backfill_account(
    ctx: JobContext, account_key: str, days: int, account: LoadedAccount
) -> JobResult:
    return single.backfill_account(ctx, account_key, days, account)
