"""Each beat entry with its cron or interval, its last run (and that run's job), its next run."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gristmill.clock import utc_now
from gristmill.jobs.models import Job
from gristmill.schedules import ScheduleRun, read_runs, schedule_entries
from gristmill.settings import Settings


@dataclass(frozen=True)
class ScheduleStatus:
    name: str
    task: str
    job_type: str | None
    cron: str | None
    interval_seconds: float | None
    last_run_at: datetime | None
    last_job_id: uuid.UUID | None
    last_job_status: str | None
    next_run_at: datetime


def read_schedules(
    session: Session, client: redis.Redis | None, settings: Settings, *, now: datetime | None = None
) -> list[ScheduleStatus]:
    """Beat records each run in Redis; for entries that create jobs, a run beat recorded before
    Redis lost its data is still found as the newest job of that type."""
    now = now or utc_now()
    entries = schedule_entries(settings)
    runs: dict[str, ScheduleRun] = read_runs(client) if client is not None else {}
    job_types = [e.job_type.value for e in entries if e.job_type is not None]
    newest_created = dict(
        session.execute(
            select(Job.job_type, func.max(Job.created_at))
            .where(Job.job_type.in_(job_types), Job.parent_job_id.is_(None))
            .group_by(Job.job_type)
        ).all()
    )
    newest_jobs: dict[str, Job] = {}
    for job_type, created_at in newest_created.items():
        job = session.scalars(
            select(Job)
            .where(Job.job_type == job_type, Job.created_at == created_at)
            .order_by(Job.job_id.desc())
            .limit(1)
        ).first()
        if job is not None:
            newest_jobs[job_type] = job
    recorded_ids = [run.job_id for run in runs.values() if run.job_id is not None]
    statuses_by_id: dict[uuid.UUID, str] = (
        dict(
            session.execute(
                select(Job.job_id, Job.status).where(Job.job_id.in_(recorded_ids))
            ).all()
        )
        if recorded_ids
        else {}
    )
    result = []
    for entry in entries:
        run = runs.get(entry.name)
        last_at, last_job_id = (run.at, run.job_id) if run else (None, None)
        status = statuses_by_id.get(last_job_id) if last_job_id else None
        fallback = newest_jobs.get(entry.job_type.value) if entry.job_type else None
        if fallback is not None and run is None:
            last_at, last_job_id, status = fallback.created_at, fallback.job_id, fallback.status
        result.append(
            ScheduleStatus(
                name=entry.name,
                task=entry.task,
                job_type=entry.job_type.value if entry.job_type else None,
                cron=entry.cron,
                interval_seconds=entry.interval_seconds,
                last_run_at=last_at,
                last_job_id=last_job_id,
                last_job_status=status,
                next_run_at=entry.next_run(now=now, last_run=last_at),
            )
        )
    return result
