"""Sending job messages to Celery, always after the transaction that wrote the rows commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from kombu.exceptions import OperationalError
from sqlalchemy import update
from sqlalchemy.orm import Session

from gristmill.celery_app import celery_app
from gristmill.clock import utc_now
from gristmill.db import call_after_commit, get_database
from gristmill.errors import DependencyUnavailableError
from gristmill.jobs.models import Job
from gristmill.jobs.types import (
    CHILD_PRIORITY,
    CHILD_QUEUE,
    JOB_TYPES,
    SCRAPE_ACCOUNT_BATCH_TASK,
    JobStatus,
    JobType,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class JobMessage:
    """What is needed to send a job; plain values, so nothing depends on a live ORM object."""

    job_id: uuid.UUID
    job_type: str
    params: dict[str, Any]
    queue: str
    priority: int

    @classmethod
    def of(cls, job: Job) -> JobMessage:
        return cls(job.job_id, job.job_type, dict(job.params), job.queue, job.priority)


def _fail_unsent(job_ids: Sequence[uuid.UUID], error: Exception) -> None:
    # The rows are committed but the broker is unreachable: mark them failed rather than leave
    # jobs `pending` that no worker will ever receive.
    with get_database().transaction() as session:
        session.execute(
            update(Job)
            .where(Job.job_id.in_(job_ids), Job.status == JobStatus.PENDING)
            .values(
                status=JobStatus.FAILED,
                completed_at=utc_now(),
                error_message=f"could not be queued, the broker is unreachable: {error}",
            )
        )


def send_now(message: JobMessage, *, countdown: float | None = None) -> None:
    spec = JOB_TYPES[JobType(message.job_type)]
    try:
        celery_app.send_task(
            spec.task_name,
            kwargs=message.params,
            task_id=str(message.job_id),
            queue=message.queue,
            priority=message.priority,
            countdown=countdown,
        )
    except OperationalError as exc:
        log.error("job_send_failed", job_id=str(message.job_id), error=str(exc))
        _fail_unsent([message.job_id], exc)
        raise DependencyUnavailableError("the message broker (Redis) is unreachable") from exc


def send_after_commit(
    session: Session, message: JobMessage, *, countdown: float | None = None
) -> None:
    call_after_commit(session, lambda: send_now(message, countdown=countdown))


def send_batch_after_commit(
    session: Session, job_ids: Sequence[uuid.UUID], batch_size: int
) -> None:
    """Send fan-out children in batches: one message scrapes many accounts concurrently."""
    ids = [str(job_id) for job_id in job_ids]

    def send() -> None:
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            try:
                celery_app.send_task(
                    SCRAPE_ACCOUNT_BATCH_TASK,
                    kwargs={"job_ids": chunk},
                    queue=CHILD_QUEUE.value,
                    priority=CHILD_PRIORITY,
                )
            except OperationalError as exc:
                _fail_unsent([uuid.UUID(i) for i in ids[start:]], exc)
                raise DependencyUnavailableError(
                    "the message broker (Redis) is unreachable"
                ) from exc

    call_after_commit(session, send)
