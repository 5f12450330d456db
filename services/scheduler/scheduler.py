"""A beat scheduler that records every scheduled run as a job, once per slot."""

from __future__ import annotations

import logging
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry
from celery.result import AsyncResult
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from gristmill.db import get_database
from gristmill.jobs.models import ScheduleRun
from gristmill.jobs.starts import create_job
from gristmill.jobs.types import JOB_TYPES, JobType
from gristmill.schedule_slots import slot_of
from gristmill.settings import get_settings

logger = logging.getLogger(__name__)

_JOB_TYPE_BY_TASK = {spec.task_name: spec.job_type for spec in JOB_TYPES.values()}
HEARTBEAT_FILE = get_settings().beat_heartbeat_file


def fire(session: Session, entry: ScheduleEntry, job_type: JobType) -> str | None:
    """Record this entry's current slot and start its job; None if the slot already fired
    (another scheduler got there first). A run still pending or running from an earlier
    slot is returned instead of a new one, so slow runs never stack up."""
    slot = slot_of(entry.schedule)
    claimed = session.execute(
        insert(ScheduleRun)
        .values(entry=entry.name, slot_at=slot)
        .on_conflict_do_nothing()
        .returning(ScheduleRun.entry)
    ).first()
    if claimed is None:
        logger.info("schedule %s slot %s already fired elsewhere", entry.name, slot.isoformat())
        return None
    started = create_job(session, job_type)
    if not started.created:
        logger.warning(
            "schedule %s: the previous run %s is still %s; not starting another",
            entry.name,
            started.job.job_id,
            started.job.status,
        )
    run = session.get(ScheduleRun, (entry.name, slot))
    if run is not None:
        run.job_id = started.job.job_id
    return str(started.job.job_id)


class JobRecordingScheduler(PersistentScheduler):
    def apply_async(
        self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> AsyncResult[Any] | None:
        job_type = _JOB_TYPE_BY_TASK.get(entry.task or "")
        if job_type is None:
            return super().apply_async(entry, producer, advance, **kwargs)  # type: ignore[no-any-return]
        if advance:
            entry = self.reserve(entry)  # type: ignore[assignment]
        # The job row is committed first; its message is sent when that commit succeeds.
        with get_database().transaction() as session:
            job_id = fire(session, entry, job_type)
        return AsyncResult(job_id, app=self.app) if job_id else None

    def tick(self, *args: Any, **kwargs: Any) -> float:
        # The liveness probe reads this file's age: a stuck beat loop stops touching it.
        HEARTBEAT_FILE.touch()
        return float(super().tick(*args, **kwargs))
