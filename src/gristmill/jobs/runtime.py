"""Running one job inside a worker: claim it, keep its heartbeat, map outcomes to job states.

Task bodies receive a `JobContext` and return the job's result. They call `ctx.checkpoint()`
between accounts or pages: that records progress, notices a cancel, and enforces the soft
time limit, so partial results are always kept.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import structlog
from sqlalchemy.orm import Session

from gristmill.celery_app import time_limits
from gristmill.db import Database, get_database
from gristmill.errors import DomainError
from gristmill.jobs.lifecycle import (
    ProgressAck,
    claim_jobs,
    dead_letter_job,
    finish_job,
    report_progress,
    retry_delay,
    schedule_retry,
    touch_heartbeats,
)
from gristmill.jobs.types import JobStatus, LimitClass
from gristmill.scrapers import PermanentScrapeError, TransientScrapeError
from gristmill.settings import Settings, get_settings

log = structlog.get_logger(__name__)
T = TypeVar("T")


class JobCancelledError(Exception):
    pass


class JobTimedOutError(Exception):
    pass


class JobSupersededError(Exception):
    """Another attempt owns the job now; this one stops without writing anything."""


class _ChildrenDecide:
    """Returned by a fan-out body: the job stays running and its children complete it."""


CHILDREN_DECIDE: Final = _ChildrenDecide()
JobResult = dict[str, Any] | _ChildrenDecide


@dataclass
class JobContext:
    job_id: uuid.UUID
    job_type: str
    attempt: int
    settings: Settings
    database: Database
    soft_limit_seconds: float
    started: float = field(default_factory=time.monotonic)
    partial_result: dict[str, Any] | None = None

    @property
    def remaining_seconds(self) -> float:
        return self.soft_limit_seconds - (time.monotonic() - self.started)

    def checkpoint(
        self,
        progress: int,
        result: dict[str, Any] | None = None,
        *,
        write: Callable[[Session], None] | None = None,
    ) -> None:
        """Save progress (and any partial writes) in one transaction; stop if cancelled or late."""
        if result is not None:
            self.partial_result = result
        with self.database.transaction() as session:
            if write is not None:
                write(session)
            ack = report_progress(session, self.job_id, progress, result, attempt=self.attempt)
        if ack is ProgressAck.CANCELLED:
            raise JobCancelledError
        if ack is ProgressAck.SUPERSEDED:
            raise JobSupersededError
        if self.remaining_seconds <= 0:
            raise JobTimedOutError

    def run_async(self, make_coroutine: Callable[[], Awaitable[T]]) -> T:
        """Run async I/O under the job's soft time limit."""

        async def bounded() -> T:
            async with asyncio.timeout(max(self.remaining_seconds, 0.001)):
                return await make_coroutine()

        try:
            return asyncio.run(bounded())
        except TimeoutError as exc:
            raise JobTimedOutError from exc


class _Heartbeats:
    """One daemon thread per process that refreshes `heartbeat_at` of the jobs it is running,
    so the orphan check can tell a slow job from one whose worker was killed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: set[uuid.UUID] = set()
        self._pid: int | None = None

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        threading.Thread(target=self._loop, name="job-heartbeats", daemon=True).start()

    def _loop(self) -> None:
        interval = get_settings().job_heartbeat_interval_seconds
        while True:
            time.sleep(interval)
            with self._lock:
                jobs = list(self._jobs)
            if not jobs:
                continue
            try:
                with get_database().transaction() as session:
                    touch_heartbeats(session, jobs)
            except Exception as exc:  # a missed beat is retried next interval
                log.warning("heartbeat_failed", error=str(exc))

    @contextmanager
    def tracking(self, job_ids: list[uuid.UUID]) -> Iterator[None]:
        with self._lock:
            self._ensure_thread()
            self._jobs.update(job_ids)
        try:
            yield
        finally:
            with self._lock:
                self._jobs.difference_update(job_ids)


heartbeats = _Heartbeats()


def handle_failure(
    session: Session,
    settings: Settings,
    job_id: uuid.UUID,
    attempt: int,
    exc: BaseException,
    *,
    partial_result: dict[str, Any] | None,
    soft_limit_seconds: float,
    refresh: bool = True,
) -> str:
    """Map an exception from a job body to the job's next state. Returns the outcome's name."""
    if isinstance(exc, JobSupersededError):
        return "superseded"
    if isinstance(exc, JobCancelledError):
        finish_job(
            session,
            job_id,
            JobStatus.CANCELLED,
            result=partial_result,
            attempt=attempt,
            refresh=refresh,
        )
        return "cancelled"
    if isinstance(exc, JobTimedOutError):
        message = f"timed out after {soft_limit_seconds:g} seconds (soft time limit)"
        finish_job(
            session,
            job_id,
            JobStatus.FAILED,
            result=partial_result,
            attempt=attempt,
            error_message=message,
            refresh=refresh,
        )
        return "timed_out"
    if isinstance(exc, TransientScrapeError):
        if attempt <= settings.task_max_retries:
            delay = retry_delay(settings, attempt, exc.retry_after)
            schedule_retry(session, job_id, str(exc), attempt=attempt, delay=delay)
            return "retried"
        error = f"{exc} (gave up after {attempt} attempts)"
        dead_letter_job(
            session, job_id, error, result=partial_result, attempt=attempt, refresh=refresh
        )
        return "dead_lettered"
    if isinstance(exc, PermanentScrapeError | DomainError):
        finish_job(
            session,
            job_id,
            JobStatus.FAILED,
            result=partial_result,
            attempt=attempt,
            error_message=str(exc),
            refresh=refresh,
        )
        return "failed"
    error = f"internal error: {type(exc).__name__}: {exc}"
    dead_letter_job(session, job_id, error, result=partial_result, attempt=attempt, refresh=refresh)
    return "dead_lettered"


def run_job(
    job_id: uuid.UUID, limit_class: LimitClass, body: Callable[[JobContext], JobResult]
) -> str:
    """Run `body` as job `job_id` if it is still pending; return the outcome's name."""
    settings = get_settings()
    database = get_database()
    with database.transaction() as session:
        claimed = claim_jobs(session, [job_id])
    if not claimed:
        log.info("job_skipped_not_pending", job_id=str(job_id))
        return "skipped"
    job = claimed[0]
    soft_limit, _ = time_limits(settings, limit_class)
    ctx = JobContext(
        job_id=job_id,
        job_type=job.job_type,
        attempt=job.attempts,
        settings=settings,
        database=database,
        soft_limit_seconds=soft_limit,
    )
    log.info("job_started", job_id=str(job_id), job_type=job.job_type, attempt=job.attempts)
    with heartbeats.tracking([job_id]):
        try:
            result = body(ctx)
        except Exception as exc:
            expected = JobCancelledError | JobSupersededError | JobTimedOutError | DomainError
            if not isinstance(exc, expected):
                log.warning("job_error", job_id=str(job_id), error=str(exc), exc_info=True)
            with database.transaction() as session:
                outcome = handle_failure(
                    session,
                    settings,
                    job_id,
                    job.attempts,
                    exc,
                    partial_result=ctx.partial_result,
                    soft_limit_seconds=soft_limit,
                )
            log.info("job_ended", job_id=str(job_id), outcome=outcome)
            return outcome
    if isinstance(result, _ChildrenDecide):
        log.info("job_fanned_out", job_id=str(job_id))
        return "fanned_out"
    with database.transaction() as session:
        ended = finish_job(
            session, job_id, JobStatus.COMPLETED, result=result, attempt=job.attempts
        )
    outcome = "completed" if ended else "ended_elsewhere"
    log.info("job_ended", job_id=str(job_id), outcome=outcome)
    return outcome
