"""Scraping jobs: one account, a backfill, and fan-out over many accounts."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from gristmill.accounts.models import Account
from gristmill.clock import utc_now, utc_today
from gristmill.events import JobChange
from gristmill.jobs.dispatch import JobMessage, send_after_commit, send_batch_after_commit
from gristmill.jobs.lifecycle import publish_jobs
from gristmill.jobs.models import Job
from gristmill.jobs.runtime import CHILDREN_DECIDE, JobContext, JobResult
from gristmill.jobs.types import (
    CHILD_PRIORITY,
    CHILD_QUEUE,
    JOB_TYPES,
    JobStatus,
    JobType,
)
from gristmill.metrics.service import (
    SnapshotWrite,
    accounts_with_activity_gaps,
    save_daily_activity,
    save_snapshots,
)
from gristmill.scrapers import (
    DailyActivity,
    Post,
    aggregate_daily,
    get_scraper,
    make_http_client,
    window_start,
)
from gristmill.scraping.accounts import fetch_profile, load_account, snapshot_result


def scrape_account(ctx: JobContext, account_key: str) -> dict[str, Any]:
    with ctx.database.transaction() as session:
        account = load_account(session, account_key)
    profile = ctx.run_async(lambda: fetch_profile(ctx.settings, account.ref))
    captured_at = utc_now()
    with ctx.database.transaction() as session:
        save_snapshots(session, [SnapshotWrite(account.id, captured_at, profile)])
    return snapshot_result(account_key, captured_at, profile)


def backfill_account(ctx: JobContext, account_key: str, days: int) -> dict[str, Any]:
    """Page back through the account's posts over the last `days` UTC dates and store per-day
    activity. Each page stores the days it has completely covered, so a cancel or timeout keeps
    every finished day."""
    with ctx.database.transaction() as session:
        account = load_account(session, account_key)
    today = utc_today()
    since = window_start(days, today)
    window_seconds = (utc_now() - since).total_seconds()
    posts: list[Post] = []
    summary: dict[str, Any] = {"account_key": account_key, "days": days, "pages": 0}

    async def page_through() -> None:
        async with make_http_client(ctx.settings) as client:
            scraper = get_scraper(
                account.ref.platform,
                client,
                allow_private_networks=ctx.settings.scraper_allow_private_networks,
            )
            async for page in scraper.iter_posts_since(account.ref, since):
                posts.extend(page)
                summary["pages"] += 1
                summary["posts_seen"] = len(posts)
                oldest = min((post.created_at for post in page), default=since)
                complete = [
                    day for day in aggregate_daily(posts, days, today) if day.date > oldest.date()
                ]
                covered = (utc_now() - max(oldest, since)).total_seconds()

                def save_complete_days(
                    session: Session, rows: list[DailyActivity] = complete
                ) -> None:
                    save_daily_activity(session, account.id, rows, utc_now())

                ctx.checkpoint(
                    int(95 * covered / window_seconds) if window_seconds else 0,
                    {**summary, "days_saved": len(complete)},
                    write=save_complete_days,
                )

    ctx.run_async(page_through)
    daily = aggregate_daily(posts, days, today)
    with ctx.database.transaction() as session:
        save_daily_activity(session, account.id, daily, utc_now())
    return {
        **summary,
        "posts_seen": len(posts),
        "days_saved": len(daily),
        "from": daily[0].date.isoformat(),
        "to": daily[-1].date.isoformat(),
        "posts_counted": sum(day.posts for day in daily),
    }


def fan_out(
    ctx: JobContext,
    child_type: JobType,
    account_keys: list[str],
    child_params: dict[str, Any] | None = None,
) -> JobResult:
    """Create one child job per account and send them; the parent completes with its children.

    Scrape children are sent in batches (one message scrapes many accounts concurrently, which
    is what makes bulk scrapes fast); other children are sent one message each.
    """
    ids = [uuid.uuid4() for _ in account_keys]
    children = [
        {
            "job_id": job_id,
            "job_type": child_type.value,
            "status": JobStatus.PENDING.value,
            "progress": 0,
            "params": {"account_key": key, **(child_params or {})},
            "account_key": key,
            "parent_job_id": ctx.job_id,
            "queue": (
                CHILD_QUEUE if child_type is JobType.SCRAPE_ACCOUNT else JOB_TYPES[child_type].queue
            ).value,
            "priority": CHILD_PRIORITY,
            "attempts": 0,
        }
        for job_id, key in zip(ids, account_keys, strict=True)
    ]
    totals = {
        "accounts_total": len(children),
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
        "failures": [],
    }
    if not children:
        return totals
    with ctx.database.transaction() as session:
        created = session.scalars(insert(Job).returning(Job), children).all()
        publish_jobs(session, created, JobChange.CREATED)
        session.execute(
            update(Job)
            .where(Job.job_id == ctx.job_id)
            .values(children_total=len(children), result=totals, heartbeat_at=utc_now())
        )
        if child_type is JobType.SCRAPE_ACCOUNT:
            send_batch_after_commit(session, ids, ctx.settings.fanout_batch_size)
        else:
            for child in session.scalars(select(Job).where(Job.job_id.in_(ids))):
                send_after_commit(session, JobMessage.of(child))
    return CHILDREN_DECIDE


def active_account_keys(session: Session, platform: str | None = None) -> list[str]:
    query = select(Account.key).where(Account.active.is_(True)).order_by(Account.key)
    if platform is not None:
        query = query.where(Account.platform == platform)
    return list(session.scalars(query))


def scrape_accounts(ctx: JobContext, platform: str | None = None) -> JobResult:
    with ctx.database.transaction() as session:
        keys = active_account_keys(session, platform)
    return fan_out(ctx, JobType.SCRAPE_ACCOUNT, keys)


BACKFILL_CHECK_DAYS = 7


def backfill_gaps(ctx: JobContext) -> JobResult:
    """Start a 7-day backfill for every account missing per-day activity in the last 7 days."""
    with ctx.database.transaction() as session:
        ids = accounts_with_activity_gaps(session, days=BACKFILL_CHECK_DAYS, today=utc_today())
        keys = list(
            session.scalars(select(Account.key).where(Account.id.in_(ids)).order_by(Account.key))
        )
    return fan_out(ctx, JobType.BACKFILL_ACCOUNT, keys, {"days": BACKFILL_CHECK_DAYS})
