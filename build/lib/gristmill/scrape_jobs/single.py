"""One-account jobs: a profile scrape and a backfill of per-day activity."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gristmill.clock import utc_now, utc_today
from gristmill.jobs.runtime import Completed, JobContext
from gristmill.metrics.service import SnapshotWrite, save_daily_activity, save_snapshots
from gristmill.scrape_jobs.accounts import LoadedAccount, scraper_for, snapshot_result
from gristmill.scrapers import DailyActivity, Post, ProfileSnapshot, aggregate_daily, window_start


def scrape_account(ctx: JobContext, account_key: str, account: LoadedAccount) -> Completed:
    async def fetch() -> ProfileSnapshot:
        return await scraper_for(ctx.settings, account).fetch_profile(account.ref)

    profile = ctx.run_async(fetch)
    captured_at = utc_now()

    def save(session: Session) -> None:
        save_snapshots(session, [SnapshotWrite(account.id, captured_at, profile)])

    return Completed(snapshot_result(account_key, captured_at, profile), write=save)


def backfill_account(
    ctx: JobContext, account_key: str, days: int, account: LoadedAccount
) -> Completed:
    """Page back through the account's posts over the last `days` UTC dates and store per-day
    activity. Each page stores the days it has completely covered, so a cancel or timeout keeps
    every finished day."""
    today = utc_today()
    since = window_start(days, today)
    window_seconds = (utc_now() - since).total_seconds()
    posts: list[Post] = []
    summary: dict[str, Any] = {"account_key": account_key, "days": days, "pages": 0}

    async def page_through() -> None:
        scraper = scraper_for(ctx.settings, account)
        async for page in scraper.iter_posts_since(account.ref, since):
            posts.extend(page)
            summary["pages"] += 1
            summary["posts_seen"] = len(posts)
            oldest = min((post.created_at for post in page), default=since)
            complete = [
                day for day in aggregate_daily(posts, days, today) if day.date > oldest.date()
            ]
            covered = (utc_now() - max(oldest, since)).total_seconds()

            def save_complete_days(session: Session, rows: list[DailyActivity] = complete) -> None:
                save_daily_activity(session, account.id, rows, utc_now())

            ctx.checkpoint(
                int(95 * covered / window_seconds) if window_seconds else 0,
                {**summary, "days_saved": len(complete)},
                write=save_complete_days,
            )

    ctx.run_async(page_through)
    daily = aggregate_daily(posts, days, today)

    def save(session: Session) -> None:
        save_daily_activity(session, account.id, daily, utc_now())

    result = {
        **summary,
        "posts_seen": len(posts),
        "days_saved": len(daily),
        "from": daily[0].date.isoformat(),
        "to": daily[-1].date.isoformat(),
        "posts_counted": sum(day.posts for day in daily),
    }
    return Completed(result, write=save)
