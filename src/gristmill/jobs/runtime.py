"""Running a job inside a worker: claim it, run its body, and decide how it ends.

The runtime knows nothing of Celery (services/worker and jobs/tasking.py translate its
outcomes) nor of scrapers: a body signals how it failed with the JobError classes of
gristmill.errors. Bodies receive a `JobContext`; they call `ctx.checkpoint()` between steps to
record progress and partial writes, and `ctx.run_async()` to do their I/O on the process's
event loop, where a cancel or the soft time limit interrupts it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from gristmill.db import Database
from gristmill.errors import (
    DependencyUnavailableError,
    DomainError,
    JobDeferredError,
    PermanentJobError,
    TransientJobError,
)
from gristmill.jobs.lifecycle import (
    Ending,
    claim_jobs,
    dead_letter_jobs,
    finish_jobs,
    report_progress,
)
from gristmill.jobs.models import Job, JobRecord
from gristmill.jobs.retries import Postponement, postpone_jobs, retry_delay
from gristmill.jobs.types import Attempt, JobStatus
from gristmill.jobs.watch import job_watch
from gristmill.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

# How long a worker keeps retrying a write while PostgreSQL is unreachable before it gives
# the message back to Celery to retry later.
DATABASE_RETRY_SECONDS = 30.0
DATABASE_OUTAGE_DELAY_SECONDS = 5.0


class JobStoppedError(Exception):
    """The attempt no longer owns its job (cancelled, or taken over): stop, write nothing."""


class JobTimedOutError(Exception):
    """The job's soft time limit passed."""


class _ChildrenDecide:
    """Returned by a fan-out body: the job stays running and its children complete it."""


CHILDREN_DECIDE: Final = _ChildrenDecide()


@dataclass(frozen=True)
class Completed:
    """A finished body's result, and the writes that must commit with its ending (they run
    only if the job still belongs to this attempt, so a cancelled job gets nothing)."""

    result: dict[str, Any]
    write: Callable[[Session], None] | None = None


JobResult = dict[str, Any] | Completed | _ChildrenDecide


class JobOutcome(StrEnum):
    COMPLETED = "completed"
    FANNED_OUT = "fanned_out"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    DEAD_LETTERED = "dead_lettered"
    RETRYING = "retrying"
    DEFERRED = "deferred"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ClaimedJob:
    job_id: uuid.UUID
    job_type: str
    attempt: int
    retries: int
    params: dict[str, Any]
    account_key: str | None
    parent_job_id: uuid.UUID | None

    @classmethod
    def of(cls, job: JobRecord) -> ClaimedJob:
        return cls(
            job.job_id,
            job.job_type,
            job.attempts,
            job.retries,
            dict(job.params),
            job.account_key,
            job.parent_job_id,
        )

    @property
    def owner(self) -> Attempt:
        return Attempt(self.job_id, self.attempt)


@dataclass(frozen=True)
class Decision:
    """How a failed attempt ends; `apply_decisions` carries it out."""

    outcome: JobOutcome
    error: BaseException
    ending: Ending | None = None
    dead_letter: Ending | None = None
    postponement: Postponement | None = None


def decide(
    settings: Settings,
    job: ClaimedJob,
    exc: BaseException,
    *,
    partial_result: dict[str, Any] | None,
    soft_limit_seconds: float,
) -> Decision:
    """Map what a body raised to the job's next state."""
    owner = job.owner
    if isinstance(exc, JobStoppedError):
        return Decision(JobOutcome.SUPERSEDED, exc)
    if isinstance(exc, JobTimedOutError):
        message = f"timed out after {soft_limit_seconds:g} seconds (soft time limit)"
        ending = Ending(owner, JobStatus.FAILED, partial_result, message)
        return Decision(JobOutcome.TIMED_OUT, exc, ending=ending)
    if isinstance(exc, JobDeferredError):
        wait = Postponement(owner, str(exc), exc.delay_seconds, spends_retry=False)
        return Decision(JobOutcome.DEFERRED, exc, postponement=wait)
    if is_transient_database_error(exc):
        # PostgreSQL went away under the job: not the job's fault, so no retry is spent.
        message = f"database unavailable during the job ({type(exc).__name__}); sent again"
        wait = Postponement(owner, message, DATABASE_OUTAGE_DELAY_SECONDS, spends_retry=False)
        return Decision(JobOutcome.DEFERRED, exc, postponement=wait)
    if isinstance(exc, TransientJobError):
        if job.retries < settings.task_max_retries:
            delay = retry_delay(settings, job.retries + 1, exc.retry_after)
            message = (
                f"{exc} (retry {job.retries + 1} of {settings.task_max_retries} in {delay:.1f}s)"
            )
            return Decision(
                JobOutcome.RETRYING, exc, postponement=Postponement(owner, message, delay)
            )
        message = f"{exc} (gave up after {job.retries} retries)"
        letter = Ending(owner, JobStatus.FAILED, partial_result, message)
        return Decision(JobOutcome.DEAD_LETTERED, exc, dead_letter=letter)
    if isinstance(exc, PermanentJobError | DomainError):
        ending = Ending(owner, JobStatus.FAILED, partial_result, str(exc))
        return Decision(JobOutcome.FAILED, exc, ending=ending)
    message = f"internal error: {type(exc).__name__}: {exc}"
    letter = Ending(owner, JobStatus.FAILED, partial_result, message)
    return Decision(JobOutcome.DEAD_LETTERED, exc, dead_letter=letter)


def apply_decisions(session: Session, decisions: Sequence[Decision]) -> set[uuid.UUID]:
    """Carry out failure decisions in bulk; returns the jobs whose state really changed."""
    changed = finish_jobs(session, [d.ending for d in decisions if d.ending])
    changed += dead_letter_jobs(session, [d.dead_letter for d in decisions if d.dead_letter])
    changed += postpone_jobs(session, [d.postponement for d in decisions if d.postponement])
    return {job.job_id for job in changed}


def is_transient_database_error(exc: BaseException) -> bool:
    """PostgreSQL is unreachable or restarting, or a conflict (deadlock, lock timeout) got in
    the way: trying again later can succeed, unlike a statement the database refused."""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def with_database_retry(action: Callable[[], T], *, seconds: float = DATABASE_RETRY_SECONDS) -> T:
    """Run `action`, retrying it with backoff while PostgreSQL is unreachable; past `seconds`
    raise DependencyUnavailableError (the task edge then retries the message)."""
    deadline = time.monotonic() + seconds
    pause = 0.25
    while True:
        try:
            return action()
        except DBAPIError as exc:
            if not is_transient_database_error(exc):
                raise
            if time.monotonic() + pause > deadline:
                raise DependencyUnavailableError("PostgreSQL is unreachable or busy") from exc
            logger.warning("database error (%s); retrying in %.1fs", type(exc.orig).__name__, pause)
            time.sleep(pause)
            pause = min(pause * 2, 4.0)


_loops = threading.local()


def process_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop, kept between jobs so HTTP connections are reused."""
    loop: asyncio.AbstractEventLoop | None = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
    return loop


@dataclass
class JobContext:
    job: ClaimedJob
    settings: Settings
    database: Database
    soft_limit_seconds: float
    started: float = field(default_factory=time.monotonic)
    partial_result: dict[str, Any] | None = None
    stopped: bool = False
    _cancel_io: Callable[[], None] | None = None

    @property
    def job_id(self) -> uuid.UUID:
        return self.job.job_id

    @property
    def remaining_seconds(self) -> float:
        return self.soft_limit_seconds - (time.monotonic() - self.started)

    def stop(self, _job_id: uuid.UUID | None = None) -> None:
        """Called by the watch thread when the job is no longer this attempt's."""
        self.stopped = True
        cancel = self._cancel_io
        if cancel is not None:
            cancel()

    def checkpoint(
        self,
        progress: int,
        result: dict[str, Any] | None = None,
        *,
        write: Callable[[Session], None] | None = None,
    ) -> None:
        """Save progress and `write` in one transaction, only while the job is this attempt's;
        raise if it was cancelled or taken over, or the soft time limit passed."""
        if result is not None:
            self.partial_result = result
        with self.database.transaction() as session:
            owned = report_progress(session, self.job.owner, progress, result)
            if owned and write is not None:
                write(session)
        if not owned:
            raise JobStoppedError
        if self.remaining_seconds <= 0:
            raise JobTimedOutError

    def run_async(self, make_coroutine: Callable[[], Awaitable[T]]) -> T:
        """Run async I/O on the process loop, under the soft time limit; a stop cancels it."""
        if self.stopped:
            raise JobStoppedError
        loop = process_loop()

        async def bounded() -> T:
            async with asyncio.timeout(max(self.remaining_seconds, 0.001)):
                return await make_coroutine()

        task = loop.create_task(bounded())
        self._cancel_io = lambda: _cancel_soon(loop, task)
        try:
            return loop.run_until_complete(task)
        except TimeoutError as exc:
            raise JobTimedOutError from exc
        except asyncio.CancelledError as exc:
            raise JobStoppedError from exc
        finally:
            self._cancel_io = None


def _cancel_soon(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    loop.call_soon_threadsafe(task.cancel)


Load = Callable[[Session, dict[str, Any]], dict[str, Any]]
Body = Callable[..., JobResult]


@dataclass(frozen=True)
class RunReport:
    """What happened to one delivery of a job, for the task edge to tell Celery."""

    outcome: JobOutcome
    job: ClaimedJob | None = None
    error: BaseException | None = None
    delay: float | None = None
    result: dict[str, Any] | None = None


def run_job(
    database: Database,
    settings: Settings,
    job_id: uuid.UUID,
    body: Body,
    *,
    soft_limit_seconds: float,
    load: Load | None = None,
) -> RunReport:
    """Claim job `job_id` if it is pending and due, run `body(ctx, **params, **loaded)`, and
    end it. `load(session, params)` runs inside the claim's transaction; what it returns is
    passed to the body as keyword arguments."""

    def claim() -> tuple[ClaimedJob, dict[str, Any] | DomainError] | None:
        with database.transaction() as session:
            claimed = claim_jobs(session, [job_id])
            if not claimed:
                return None
            job = ClaimedJob.of(claimed[0])
            try:
                return job, (load(session, job.params) if load else {})
            except DomainError as exc:
                # The job cannot run at all (its account is gone): it fails in this same
                # transaction, before it ran.
                decision = decide(settings, job, exc, partial_result=None, soft_limit_seconds=0)
                apply_decisions(session, [decision])
                return job, exc

    found = with_database_retry(claim)
    if found is None:
        return RunReport(JobOutcome.SKIPPED)
    job, loaded = found
    if isinstance(loaded, DomainError):
        return RunReport(JobOutcome.FAILED, job, loaded)
    ctx = JobContext(job, settings, database, soft_limit_seconds)
    logger.info("job %s started (%s, attempt %d)", job_id, job.job_type, job.attempt)
    with job_watch.tracking([job.owner], ctx.stop):
        try:
            result = body(ctx, **job.params, **loaded)
        except Exception as exc:
            return _end_failed(database, settings, ctx, exc)
    if isinstance(result, _ChildrenDecide):
        return RunReport(JobOutcome.FANNED_OUT, job)
    completed = result if isinstance(result, Completed) else Completed(result)

    def finish() -> bool:
        with database.transaction() as session:
            ended = finish_jobs(session, [Ending(job.owner, JobStatus.COMPLETED, completed.result)])
            if ended and completed.write is not None:
                completed.write(session)
        return bool(ended)

    if with_database_retry(finish):
        return RunReport(JobOutcome.COMPLETED, job, result=completed.result)
    return RunReport(_why_not_owned(database, job_id), job)


def _end_failed(
    database: Database, settings: Settings, ctx: JobContext, exc: Exception
) -> RunReport:
    decision = decide(
        settings,
        ctx.job,
        exc,
        partial_result=ctx.partial_result,
        soft_limit_seconds=ctx.soft_limit_seconds,
    )
    if decision.outcome is JobOutcome.DEAD_LETTERED and not isinstance(exc, DomainError):
        logger.warning("job %s raised an unexpected error", ctx.job_id, exc_info=exc)
    if decision.outcome is JobOutcome.SUPERSEDED:
        return RunReport(_why_not_owned(database, ctx.job_id), ctx.job, exc)

    def apply() -> set[uuid.UUID]:
        with database.transaction() as session:
            return apply_decisions(session, [decision])

    if ctx.job_id not in with_database_retry(apply):
        return RunReport(_why_not_owned(database, ctx.job_id), ctx.job, exc)
    delay = decision.postponement.delay if decision.postponement else None
    return RunReport(decision.outcome, ctx.job, exc, delay)


def _why_not_owned(database: Database, job_id: uuid.UUID) -> JobOutcome:
    with database.transaction() as session:
        status = session.scalar(select(Job.status).where(Job.job_id == job_id))
    return JobOutcome.CANCELLED if status == JobStatus.CANCELLED.value else JobOutcome.SUPERSEDED
