"""Every kind of job: the Celery task that runs it, its queue, priority and time-limit class."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

LimitClass = Literal["scrape", "backfill", "maintenance"]


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
UNFINISHED_STATUSES = frozenset({JobStatus.PENDING, JobStatus.RUNNING})


class JobType(StrEnum):
    SCRAPE_ALL = "scrape_all"
    SCRAPE_ACCOUNT = "scrape_account"
    SCRAPE_PLATFORM = "scrape_platform"
    BACKFILL_ACCOUNT = "backfill_account"
    DAILY_SCRAPE_ALL = "daily_scrape_all"
    CLEANUP_OLD_JOBS = "cleanup_old_jobs"
    HEALTH_CHECK = "health_check"
    BACKFILL_CHECK = "backfill_check"


class Queue(StrEnum):
    HIGH = "high"
    DEFAULT = "default"
    LOW = "low"


# Redis priorities: 0 is the most urgent, 9 the least.
URGENT = 0
NORMAL = 5


@dataclass(frozen=True)
class JobTypeSpec:
    job_type: JobType
    task_name: str
    queue: Queue
    priority: int
    limits: LimitClass


JOB_TYPES: dict[JobType, JobTypeSpec] = {
    spec.job_type: spec
    for spec in (
        JobTypeSpec(
            JobType.SCRAPE_ACCOUNT, "gristmill.scrape_account", Queue.HIGH, URGENT, "scrape"
        ),
        JobTypeSpec(
            JobType.SCRAPE_ALL, "gristmill.scrape_all_accounts", Queue.DEFAULT, URGENT, "scrape"
        ),
        JobTypeSpec(
            JobType.SCRAPE_PLATFORM, "gristmill.scrape_platform", Queue.DEFAULT, URGENT, "scrape"
        ),
        JobTypeSpec(
            JobType.DAILY_SCRAPE_ALL, "gristmill.daily_scrape_all", Queue.DEFAULT, URGENT, "scrape"
        ),
        JobTypeSpec(
            JobType.BACKFILL_ACCOUNT, "gristmill.backfill_account", Queue.LOW, NORMAL, "backfill"
        ),
        JobTypeSpec(
            JobType.BACKFILL_CHECK, "gristmill.backfill_check", Queue.LOW, URGENT, "maintenance"
        ),
        JobTypeSpec(
            JobType.CLEANUP_OLD_JOBS, "gristmill.cleanup_old_jobs", Queue.LOW, URGENT, "maintenance"
        ),
        # Not on `low` with the other maintenance: it would wait behind a 30-minute backfill.
        JobTypeSpec(
            JobType.HEALTH_CHECK, "gristmill.health_check", Queue.DEFAULT, URGENT, "maintenance"
        ),
    )
}

# Plumbing task that is not a job itself (no row of its own): many fan-out children at once.
SCRAPE_ACCOUNT_BATCH_TASK = "gristmill.scrape_account_batch"
# Fan-out children of bulk jobs go to the bulk queue at a lower urgency than people's jobs.
CHILD_QUEUE = Queue.DEFAULT
CHILD_PRIORITY = NORMAL


@dataclass(frozen=True)
class Attempt:
    """A job as one attempt of a worker holds it: `attempt` is the job's `attempts` when this
    worker claimed it, the fencing token of every write the attempt makes."""

    job_id: uuid.UUID
    attempt: int
