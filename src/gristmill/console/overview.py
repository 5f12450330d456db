"""Job counts for the console's overview: by status per hour over the last 24 h, unsent jobs
(the outbox: due jobs not yet handed to the broker) and open dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gristmill.clock import utc_now
from gristmill.jobs.models import DeadLetter, Job
from gristmill.jobs.outbox import unsent_summary
from gristmill.jobs.types import JobStatus

WINDOW_HOURS = 24


@dataclass(frozen=True)
class HourCounts:
    hour: datetime
    counts: dict[str, int]


@dataclass(frozen=True)
class Overview:
    since: datetime
    totals: dict[str, int]
    hours: list[HourCounts]
    unsent_jobs: int
    oldest_unsent_at: datetime | None
    dead_letters: int


def read_overview(session: Session, *, now: datetime | None = None) -> Overview:
    now = now or utc_now()
    first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=WINDOW_HOURS - 1)
    hour = func.date_trunc("hour", Job.created_at).label("hour")
    rows = session.execute(
        select(hour, Job.status, func.count())
        .where(Job.created_at >= first_hour)
        .group_by(hour, Job.status)
    ).all()
    by_hour: dict[datetime, dict[str, int]] = {
        first_hour + timedelta(hours=i): {s.value: 0 for s in JobStatus}
        for i in range(WINDOW_HOURS)
    }
    totals = {s.value: 0 for s in JobStatus}
    for bucket, status, count in rows:
        counts = by_hour.get(bucket)
        if counts is not None:
            counts[status] = counts.get(status, 0) + int(count)
        totals[status] = totals.get(status, 0) + int(count)
    unsent = unsent_summary(session)
    dead = session.scalar(
        select(func.count()).select_from(DeadLetter).where(DeadLetter.requeued_at.is_(None))
    )
    return Overview(
        since=first_hour,
        totals=totals,
        hours=[HourCounts(h, c) for h, c in sorted(by_hour.items())],
        unsent_jobs=unsent.count,
        oldest_unsent_at=unsent.oldest_since,
        dead_letters=int(dead or 0),
    )
