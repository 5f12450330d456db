"""A beat scheduler that records every scheduled run as a job before sending it."""

from __future__ import annotations

from typing import Any

from celery.beat import PersistentScheduler
from celery.result import AsyncResult

from gristmill.db import get_database
from gristmill.jobs.service import create_job
from gristmill.jobs.types import JOB_TYPES
from gristmill.settings import get_settings

_JOB_TYPE_BY_TASK = {spec.task_name: spec.job_type for spec in JOB_TYPES.values()}
HEARTBEAT_FILE = get_settings().beat_heartbeat_file


class JobRecordingScheduler(PersistentScheduler):
    def send_task(self, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        name = args[0] if args else kwargs["name"]
        job_type = _JOB_TYPE_BY_TASK.get(name)
        if job_type is None:
            return super().send_task(*args, **kwargs)  # type: ignore[no-any-return]
        # The job row is committed first; its message is sent when that commit succeeds.
        with get_database().transaction() as session:
            job = create_job(session, job_type)
        return AsyncResult(str(job.job_id), app=self.app)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        # The liveness probe reads this file's age: a stuck beat loop stops touching it.
        HEARTBEAT_FILE.touch()
        return float(super().tick(*args, **kwargs))
