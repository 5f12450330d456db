"""The Celery edge of the job runtime: the one way to declare a job task, and what Celery is told.

`@job_task(JobType.X)` over `body(ctx, **params)` registers the task under the name, queue and
time-limit class of JOB_TYPES (acks_late, reject_on_worker_lost, prefetch and hard limits come
from the Celery configuration). The Celery task id is the job id, so the message carries only
the job's parameters. Each delivery's outcome is told to Celery as it is, so Flower, the
task-* events and celery_task_*_total agree with the jobs table:

| job outcome                          | Celery sees                                     |
| ------------------------------------ | ----------------------------------------------- |
| completed, fanned out                | SUCCESS                                         |
| failed, timed out, dead-lettered     | FAILURE (the job's error)                       |
| retry or deferral scheduled          | RETRY (the relay sends it again when it is due) |
| cancelled                            | REVOKED                                         |
| duplicate delivery, taken over       | nothing (acknowledged, ignored)                 |
| PostgreSQL unreachable               | RETRY of the same message, with backoff         |
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import Ignore, Retry
from celery.signals import task_revoked

from gristmill.celery_app import celery_app, time_limits
from gristmill.db import get_database
from gristmill.errors import DependencyUnavailableError, DomainError, JobError
from gristmill.jobs.runtime import Body, JobOutcome, JobTimedOutError, Load, RunReport, run_job
from gristmill.jobs.types import JOB_TYPES, JobType
from gristmill.settings import get_settings

logger = logging.getLogger(__name__)

# Expected ways for a job to fail: Celery records FAILURE without logging a traceback.
EXPECTED_FAILURES = (JobError, DomainError, JobTimedOutError)
_FAILED = {JobOutcome.FAILED, JobOutcome.TIMED_OUT, JobOutcome.DEAD_LETTERED}
_POSTPONED = {JobOutcome.RETRYING, JobOutcome.DEFERRED}


def database_retry_countdown(retries: int) -> float:
    """Backoff for a message retried because PostgreSQL was unreachable: 2, 4 ... 30 s."""
    return float(min(2 ** (retries + 1), 30) * random.uniform(0.75, 1.0))


def job_task(job_type: JobType, *, load: Load | None = None) -> Callable[[Body], Task[Any, Any]]:
    spec = JOB_TYPES[job_type]

    def decorator(body: Body) -> Task[Any, Any]:
        def run(self: Task[Any, Any], /, **params: Any) -> dict[str, Any]:
            settings = get_settings()
            soft_limit, _ = time_limits(settings, spec.limits)
            try:
                report = run_job(
                    get_database(),
                    settings,
                    uuid.UUID(str(self.request.id)),
                    body,
                    soft_limit_seconds=soft_limit,
                    load=load,
                )
            except DependencyUnavailableError as exc:
                countdown = database_retry_countdown(self.request.retries)
                raise self.retry(exc=exc, countdown=countdown) from exc
            return tell_celery(self, report)

        run.__name__ = body.__name__
        run.__doc__ = body.__doc__
        task: Task[Any, Any] = celery_app.task(
            name=spec.task_name,
            bind=True,
            queue=spec.queue.value,
            throws=EXPECTED_FAILURES,
            # Database outages are retried for as long as they last.
            max_retries=None,
        )(run)
        return task

    return decorator


def tell_celery(task: Task[Any, Any], report: RunReport) -> dict[str, Any]:
    """Return (SUCCESS) or raise so that Celery records what happened to the job."""
    if report.outcome is JobOutcome.COMPLETED:
        return report.result or {}
    if report.outcome is JobOutcome.FANNED_OUT:
        return {"outcome": report.outcome.value}
    if report.outcome in _FAILED and report.error is not None:
        raise report.error
    if report.outcome in _POSTPONED and isinstance(report.error, Exception):
        # `when` is only shown ("Retry in 12s"); the outbox relay sends the job when it is due.
        when: Any = report.delay
        raise Retry(str(report.error), exc=report.error, when=when)
    if report.outcome is JobOutcome.CANCELLED:
        announce_revoked(task)
    raise Ignore(report.outcome.value)


def announce_revoked(task: Task[Any, Any]) -> None:
    """Tell Flower (task-revoked event) and the worker's metrics that the job was cancelled."""
    try:
        task.send_event("task-revoked", terminated=False, signum=None, expired=False)
    except Exception:  # the event is a courtesy; the job's state is already committed
        logger.warning("cannot send the task-revoked event", exc_info=True)
    task_revoked.send(
        sender=task, request=task.request, terminated=False, signum=None, expired=False
    )
