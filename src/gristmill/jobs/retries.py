"""Sending a job again later: retries with backoff, and deferrals that spend no retry.

A postponed job goes back to `pending` with `run_after` set and `enqueued_at` cleared: it is in
the outbox again, and the relay sends it once it is due. Nothing waits in a worker's memory, so
a retry survives worker restarts and the broker losing its data.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import DateTime, Integer, String, Uuid, column, update, values
from sqlalchemy.orm import Session

from gristmill.clock import utc_now
from gristmill.events import JobChange, publish_jobs
from gristmill.jobs.lifecycle import JobRow, back_to_pending
from gristmill.jobs.models import JOBS
from gristmill.jobs.types import Attempt, JobStatus
from gristmill.settings import Settings

MAX_RETRY_AFTER_SECONDS = 1800.0


@dataclass(frozen=True)
class Postponement:
    """Send the job again after `delay` seconds; `spends_retry` is False for a deferral."""

    owner: Attempt
    error: str
    delay: float
    spends_retry: bool = True


_POSTPONEMENTS = values(
    column("job_id", Uuid),
    column("attempt", Integer),
    column("run_after", DateTime(timezone=True)),
    column("error", String),
    column("spent", Integer),
    name="postponement",
)


def postpone_jobs(session: Session, postponements: Sequence[Postponement]) -> list[JobRow]:
    """Put running jobs back to pending; the outbox relay sends each once its delay is over."""
    if not postponements:
        return []
    now = utc_now()
    rows = _POSTPONEMENTS.data(
        [
            (
                p.owner.job_id,
                p.owner.attempt,
                now + timedelta(seconds=p.delay),
                p.error,
                1 if p.spends_retry else 0,
            )
            for p in sorted(postponements, key=lambda p: p.owner.job_id)
        ]
    )
    jobs = JOBS.c
    postponed = list(
        session.connection().execute(
            update(JOBS)
            .where(jobs.job_id == rows.c.job_id, jobs.attempts == rows.c.attempt)
            .where(jobs.status == JobStatus.RUNNING.value)
            .values(
                **back_to_pending(rows.c.run_after),
                retries=jobs.retries + rows.c.spent,
                error_message=rows.c.error,
            )
            .returning(JOBS)
        )
    )
    publish_jobs(session, postponed, JobChange.STATUS)
    return postponed


def retry_delay(settings: Settings, retries: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter for the `retries`-th retry (1-based); a platform's
    Retry-After is honoured as the minimum."""
    ceiling = min(
        settings.retry_backoff_max_seconds,
        settings.retry_backoff_base_seconds * 2 ** max(retries - 1, 0),
    )
    delay = ceiling * random.uniform(0.5, 1.0)
    if retry_after is not None:
        # Honoured, but bounded: "inf" is not a delay, and a job parked for days would look
        # lost to whoever watches it.
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return float(delay)
