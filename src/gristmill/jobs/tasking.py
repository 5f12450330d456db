"""The one way to declare a job task: `@job_task(JobType.X)` over a function of a JobContext.

The decorator fills what every job task shares: its registered name, queue and time-limit
class come from JOB_TYPES; acks_late, reject_on_worker_lost, prefetch and hard limits come from
the Celery configuration; retries and job bookkeeping come from `run_job`. The Celery task id is
the job id, so a task is given only the job's parameters (ids, never objects).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from celery import Task

from gristmill.celery_app import celery_app
from gristmill.jobs.runtime import JobContext, JobResult, run_job
from gristmill.jobs.types import JOB_TYPES, JobType

JobBody = Callable[..., JobResult]


def job_task(job_type: JobType) -> Callable[[JobBody], Task[Any, Any]]:
    spec = JOB_TYPES[job_type]

    def decorator(body: JobBody) -> Task[Any, Any]:
        def run(self: Task[Any, Any], /, **params: Any) -> str:
            job_id = uuid.UUID(str(self.request.id))
            return run_job(job_id, spec.limits, lambda ctx: body(ctx, **params))

        run.__name__ = body.__name__
        run.__doc__ = body.__doc__
        task: Task[Any, Any] = celery_app.task(
            name=spec.task_name, bind=True, queue=spec.queue.value
        )(run)
        return task

    return decorator


__all__ = ["JobContext", "job_task"]
