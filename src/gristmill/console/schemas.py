"""Response bodies of the console's api routes (also what the streams send)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class QueueRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(examples=["high"])
    depth: int = Field(description="Messages waiting, summed over the queue's 10 priority lists.")
    oldest_age_seconds: float | None = Field(
        description="Age of the oldest waiting message; null when the queue is empty."
    )
    oldest_sent_at: float | None = Field(description="Unix time that message was published.")


class QueuesRead(BaseModel):
    queues: list[QueueRead]


class WorkerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    pool: str
    hostname: str
    queues: list[str]
    concurrency: int
    active: int = Field(description="Tasks running as of the last heartbeat.")
    last_heartbeat: float = Field(description="Unix time of the last heartbeat.")
    heartbeat_age_seconds: float
    up: bool = Field(description="False once three heartbeats were missed.")


class PodRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    pool: str | None
    phase: str
    ready: bool
    restarts: int
    age_seconds: float
    node: str | None


class PoolPodsRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    pool: str
    pods: list[PodRead]


class WorkersRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    workers: list[WorkerRead]
    pods: list[PoolPodsRead] | None = Field(
        default=None,
        description="Worker pods per pool, read from the Kubernetes API; absent outside a cluster.",
    )
    pods_error: str | None = Field(default=None, description="Why pods could not be listed.")


class ScheduleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    task: str
    job_type: str | None
    cron: str | None = Field(description="5-field cron in UTC, for cron entries.")
    interval_seconds: float | None = Field(description="For interval entries.")
    last_run_at: datetime | None = Field(description="When beat fired the last run.")
    last_slot_at: datetime | None = Field(description="The schedule slot that run was for.")
    last_job_id: uuid.UUID | None
    last_job_status: str | None
    next_run_at: datetime


class SchedulesRead(BaseModel):
    schedules: list[ScheduleRead]


class HourCountsRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    hour: datetime
    counts: dict[str, int]


class OverviewRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    since: datetime
    totals: dict[str, int] = Field(description="Jobs created since `since`, by current status.")
    hours: list[HourCountsRead]
    unsent_jobs: int = Field(
        description="Due jobs not yet handed to the broker (the outbox relay sends them)."
    )
    oldest_unsent_at: datetime | None = Field(description="Since when the oldest one waits.")
    dead_letters: int
