"""Each beat entry with its cron or interval, its last run (and that run's job), its next run."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from gristmill.clock import utc_now
from gristmill.jobs.models import Job, ScheduleRun
from gristmill.schedules import schedule_entries
from gristmill.settings import Settings


@dataclass(frozen=True)
class ScheduleStatus:
    name: str
    task: str
    job_type: str | None
    cron: str | None
    interval_seconds: float | None
    last_run_at: datetime | None
    last_slot_at: datetime | None
    last_job_id: uuid.UUID | None
    last_job_status: str | None
    next_run_at: datetime


def read_schedules(
    session: Session, settings: Settings, *, now: datetime | None = None
) -> list[ScheduleStatus]:
    """The scheduler records every firing in `schedule_runs`; the newest slot of each entry is
    its last run, with the status its job has now (null if the job was since deleted)."""
    now = now or utc_now()
    entries = schedule_entries(settings)
    latest = session.execute(
        select(ScheduleRun.entry, ScheduleRun.slot_at, ScheduleRun.fired_at, Job.job_id, Job.status)
        .outerjoin(Job, Job.job_id == ScheduleRun.job_id)
        .where(ScheduleRun.entry.in_([e.name for e in entries]))
        .ext(distinct_on(ScheduleRun.entry))
        .order_by(ScheduleRun.entry, ScheduleRun.slot_at.desc())
    ).all()
    runs = {row.entry: row for row in latest}
    result = []
    for entry in entries:
        run = runs.get(entry.name)
        last_at = run.fired_at if run else None
        result.append(
            ScheduleStatus(
                name=entry.name,
                task=entry.task,
                job_type=entry.job_type.value,
                cron=entry.cron,
                interval_seconds=entry.interval_seconds,
                last_run_at=last_at,
                last_slot_at=run.slot_at if run else None,
                last_job_id=run.job_id if run else None,
                last_job_status=run.status if run else None,
                next_run_at=entry.next_run(now=now, last_run=last_at),
            )
        )
    return result
