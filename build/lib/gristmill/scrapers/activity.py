"""Turn a list of posts into per-day activity rows for a backfill window."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from gristmill.scrapers.base import DailyActivity, Post


def _first_day(days: int, today: date) -> date:
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    return today - timedelta(days=days - 1)


def window_start(days: int, today: date) -> datetime:
    """00:00 UTC of the first of the `days` UTC dates ending with `today`."""
    return datetime.combine(_first_day(days, today), time.min, tzinfo=UTC)


def aggregate_daily(posts: Iterable[Post], days: int, today: date) -> list[DailyActivity]:
    """One row per UTC date in the window ending `today` (inclusive), oldest first.

    A day's `posts` counts own posts and replies created that UTC day; likes, reposts
    and replies are the sums of those posts' current counts. Days without posts are
    zeros, posts outside the window are ignored and a uri seen twice (e.g. a pinned post
    that also appears in date order) is counted once.
    """
    first = _first_day(days, today)
    totals: dict[date, list[int]] = {first + timedelta(days=i): [0, 0, 0, 0] for i in range(days)}
    seen: set[str] = set()
    for post in posts:
        if post.uri in seen:
            continue
        seen.add(post.uri)
        day = post.created_at.astimezone(UTC).date()
        row = totals.get(day)
        if row is None:
            continue
        row[0] += 1
        row[1] += post.likes
        row[2] += post.reposts
        row[3] += post.replies
    return [
        DailyActivity(date=day, posts=row[0], likes=row[1], reposts=row[2], replies=row[3])
        for day, row in sorted(totals.items())
    ]
