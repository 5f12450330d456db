"""A beat scheduler that records every scheduled run as a job before sending it, and notes each
run (entry, time, job id) in Redis for the console's schedules view."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import redis
from celery.beat import PersistentScheduler, ScheduleEntry
from celery.result import AsyncResult

from gristmill.clock import utc_now
from gristmill.db import get_database
from gristmill.jobs.service import create_job
from gristmill.jobs.types import JOB_TYPES
from gristmill.schedules import record_run
from gristmill.settings import get_settings

logger = logging.getLogger(__name__)

_JOB_TYPE_BY_TASK = {spec.task_name: spec.job_type for spec in JOB_TYPES.values()}
HEARTBEAT_FILE = Path(os.environ.get("BEAT_HEARTBEAT_FILE", "/tmp/gristmill-beat.heartbeat"))
_REDIS_TIMEOUT_SECONDS = 1.0


class JobRecordingScheduler(PersistentScheduler):
    _runs_client: redis.Redis | None = None

    def send_task(self, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        name = args[0] if args else kwargs["name"]
        job_type = _JOB_TYPE_BY_TASK.get(name)
        if job_type is None:
            return super().send_task(*args, **kwargs)  # type: ignore[no-any-return]
        # The job row is committed first; its message is sent when that commit succeeds.
        with get_database().transaction() as session:
            job = create_job(session, job_type)
        return AsyncResult(str(job.job_id), app=self.app)

    def apply_async(
        self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> AsyncResult[Any]:
        result: AsyncResult[Any] = super().apply_async(entry, producer, advance, **kwargs)
        self._record(entry.name, str(result.id) if result is not None else None)
        return result

    def _record(self, entry_name: str | None, job_id: str | None) -> None:
        # Only a display aid: a Redis hiccup must never stop beat from scheduling.
        if entry_name is None:
            return
        try:
            if self._runs_client is None:
                self._runs_client = redis.Redis.from_url(
                    get_settings().redis_url.get_secret_value(),
                    socket_timeout=_REDIS_TIMEOUT_SECONDS,
                    socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
                )
            record_run(self._runs_client, entry_name, at=utc_now(), job_id=job_id)
        except redis.RedisError:
            logger.warning("cannot record the run of %s in Redis", entry_name, exc_info=True)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        # The liveness probe reads this file's age: a stuck beat loop stops touching it.
        HEARTBEAT_FILE.touch()
        return float(super().tick(*args, **kwargs))
