from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    job_id: uuid.UUID
    job_type: str
    status: str
    progress: int
    result: dict[str, Any] | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    account_key: str | None
    parent_job_id: uuid.UUID | None
    params: dict[str, Any]
    queue: str
    priority: int
    attempts: int
    retries: int = Field(description="Transient failures retried so far (TASK_MAX_RETRIES).")
    worker_losses: int = Field(description="Times its worker died while running it.")
    hard_timeouts: int = Field(description="Times it was killed at its hard time limit.")
    enqueued_at: datetime | None = Field(
        description="When its message was last handed to the broker; null while unsent."
    )
    run_after: datetime | None = Field(
        description="A pending job is not sent before this (a retry's backoff)."
    )
    retry_of_job_id: uuid.UUID | None


class JobPage(BaseModel):
    items: list[JobRead]
    next_cursor: str | None


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: `true` or "5" are not a number of days.
    days: int = Field(
        ge=1, le=365, strict=True, description="How many UTC dates, ending today, to backfill."
    )


class DeadLetterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    job_id: uuid.UUID
    job_type: str
    account_key: str | None
    error_message: str
    attempts: int
    created_at: datetime


class DeadLetterPage(BaseModel):
    items: list[DeadLetterRead]
    next_cursor: str | None
