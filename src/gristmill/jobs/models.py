from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from gristmill.db import Base
from gristmill.jobs.types import JobStatus, JobType

# Predicates of partial indexes, spelled the same in queries (as literals, not parameters) so
# that PostgreSQL proves them from the query even with a generic plan and uses the index.
ACTIVE_DEDUPE_PREDICATE = "dedupe_key IS NOT NULL AND status IN ('pending', 'running')"
UNSENT_PREDICATE = "status = 'pending' AND enqueued_at IS NULL"
FINISHED_TOP_LEVEL_PREDICATE = (
    "parent_job_id IS NULL AND status IN ('completed', 'failed', 'cancelled')"
)


def _in_list(column: str, values: list[str]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class JobRecord(Protocol):
    """A job's columns as read: an ORM `Job` or a Core row of the jobs table (the engine's hot
    paths use Core statements and return rows)."""

    @property
    def job_id(self) -> uuid.UUID: ...
    @property
    def job_type(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def progress(self) -> int: ...
    @property
    def result(self) -> dict[str, Any] | None: ...
    @property
    def error_message(self) -> str | None: ...
    @property
    def account_key(self) -> str | None: ...
    @property
    def parent_job_id(self) -> uuid.UUID | None: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def queue(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def attempts(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def worker_losses(self) -> int: ...
    @property
    def run_after(self) -> datetime | None: ...
    @property
    def children_total(self) -> int | None: ...
    @property
    def children_succeeded(self) -> int: ...
    @property
    def children_failed(self) -> int: ...
    @property
    def children_cancelled(self) -> int: ...
    @property
    def dedupe_key(self) -> str | None: ...


class Job(Base):
    __tablename__ = "jobs"

    # The id of the Celery message that runs the job.
    job_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    job_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    progress: Mapped[int] = mapped_column(SmallInteger, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    account_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parent_job_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.job_id", ondelete="CASCADE"), nullable=True
    )
    # The Celery task's keyword arguments: enough to send the job again.
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    queue: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(SmallInteger)
    # Times a worker claimed the job; also the fencing token of the attempt that owns it.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Separate budgets: transient errors (TASK_MAX_RETRIES), workers lost while running it
    # (TASK_MAX_WORKER_LOSSES), kills at the hard time limit (TASK_MAX_HARD_TIMEOUTS).
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    worker_losses: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    hard_timeouts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The outbox: a pending job whose message was not handed to the broker (or was lost with
    # the broker's data) has enqueued_at NULL; the relay sends it once run_after has passed.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    run_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Set on fan-out parents: their liveness and progress come from these counters, which
    # each ending child bumps (O(1) per child), not from a heartbeat or a recount.
    children_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    children_succeeded: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    children_failed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    children_cancelled: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    retry_of_job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    # Type and parameters of a job started by a person or a schedule: at most one such job is
    # pending or running at a time (a partial unique index), so starts do not stack up.
    dedupe_key: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        CheckConstraint(_in_list("status", [s.value for s in JobStatus]), name="ck_jobs_status"),
        CheckConstraint(_in_list("job_type", [t.value for t in JobType]), name="ck_jobs_job_type"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="ck_jobs_progress"),
        # Listing is newest first, optionally filtered; the job_id tie-break makes cursors exact.
        Index("ix_jobs_created", "created_at", "job_id"),
        Index("ix_jobs_status_created", "status", "created_at", "job_id"),
        Index("ix_jobs_type_created", "job_type", "created_at", "job_id"),
        Index("ix_jobs_account_created", "account_key", "created_at", "job_id"),
        Index("ix_jobs_parent_status", "parent_job_id", "status"),
        Index(
            "ix_jobs_running_heartbeat",
            "heartbeat_at",
            postgresql_where=text("status = 'running'"),
        ),
        Index("ix_jobs_unsent", "created_at", postgresql_where=text(UNSENT_PREDICATE)),
        Index(
            "uq_jobs_active_dedupe",
            "dedupe_key",
            unique=True,
            postgresql_where=text("dedupe_key IS NOT NULL AND status IN ('pending', 'running')"),
        ),
        # The cleanup walks finished top-level jobs oldest first, in small batches.
        Index(
            "ix_jobs_finished_top_level",
            "completed_at",
            postgresql_where=text(FINISHED_TOP_LEVEL_PREDICATE),
        ),
    )


class BrokerEpoch(Base):
    """The broker's identity as the outbox last saw it (one row).

    The relay keeps the same value under a Redis key that vanishes with Redis's data; a key
    that is gone or different means every message the broker held is gone, so every pending
    job is sent again. Marking jobs as sent checks this row, so a mark can never land on a job
    whose message was lost after the reset.
    """

    __tablename__ = "broker_epoch"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=1)
    epoch: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("id = 1", name="ck_broker_epoch_single_row"),)


class ScheduleRun(Base):
    """One firing of a beat entry: the slot it was for and the job it created. The primary key
    makes a slot fire once, even with two schedulers running during a bad rollout."""

    __tablename__ = "schedule_runs"

    entry: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    fired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IdempotencyKey(Base):
    """A start request's Idempotency-Key and the response it got, kept 24 hours."""

    __tablename__ = "idempotency_keys"

    # A digest of the token that sent it: clients never see each other's keys.
    principal: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(SmallInteger)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_idempotency_keys_created", "created_at"),)


class DeadLetter(Base):
    """A job that failed for good; it stays here until someone re-runs it."""

    __tablename__ = "dead_letters"

    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True
    )
    job_type: Mapped[str] = mapped_column(String(32))
    account_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    requeued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    requeued_job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)

    __table_args__ = (
        Index(
            "ix_dead_letters_open",
            "created_at",
            postgresql_where=text("requeued_at IS NULL"),
        ),
    )


# The jobs table for Core statements: the engine's hot paths skip the ORM's per-statement work.
JOBS = cast(Table, Job.__table__)
