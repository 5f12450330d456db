from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from gristmill.db import Base
from gristmill.jobs.types import JobStatus, JobType


def _in_list(column: str, values: list[str]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


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
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set on fan-out parents: their liveness comes from their children, not a heartbeat.
    children_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    retry_of_job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)

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
    )


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
