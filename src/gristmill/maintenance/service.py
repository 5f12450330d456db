"""Scheduled housekeeping: deleting old jobs and checking that the system's parts answer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import delete, select, text

from gristmill.celery_app import celery_app
from gristmill.clock import utc_now
from gristmill.errors import DependencyUnavailableError
from gristmill.jobs import idempotency
from gristmill.jobs.models import FINISHED_TOP_LEVEL_PREDICATE, Job
from gristmill.jobs.runtime import JobContext


def cleanup_old_jobs(ctx: JobContext) -> dict[str, Any]:
    """Delete finished top-level jobs (and with them their children) older than the retention,
    one batch per transaction so a long cleanup never holds a big lock; and idempotency keys
    past their 24 hours."""
    with ctx.database.transaction() as session:
        expired_keys = idempotency.delete_expired(session)
    cutoff = utc_now() - timedelta(days=ctx.settings.job_retention_days)
    deleted = 0
    while True:
        with ctx.database.transaction() as session:
            # Oldest first through the partial index of finished top-level jobs: each batch
            # reads only the rows it deletes.
            batch = (
                select(Job.job_id)
                .where(
                    text(FINISHED_TOP_LEVEL_PREDICATE),
                    Job.completed_at < cutoff,
                    Job.job_id != ctx.job_id,
                )
                .order_by(Job.completed_at)
                .limit(ctx.settings.cleanup_batch_size)
            )
            removed = session.execute(
                delete(Job).where(Job.job_id.in_(batch.scalar_subquery())).returning(Job.job_id)
            ).all()
        deleted += len(removed)
        if len(removed) < ctx.settings.cleanup_batch_size:
            break
        ctx.checkpoint(50, {"deleted": deleted, "cutoff": cutoff.isoformat()})
    return {"deleted": deleted, "cutoff": cutoff.isoformat(), "idempotency_keys": expired_keys}


def check_dependencies(ctx: JobContext) -> dict[str, Any]:
    """PostgreSQL and Redis answer, and at least one worker replies to a ping."""
    checks: dict[str, Any] = {}
    problems: list[str] = []
    try:
        with ctx.database.transaction() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = "unreachable"
        problems.append(f"database unreachable: {type(exc).__name__}")
    client = redis.Redis.from_url(ctx.settings.broker_url, socket_timeout=3)
    try:
        client.ping()
        checks["redis"] = "ok"
    except redis.RedisError as exc:
        checks["redis"] = "unreachable"
        problems.append(f"redis unreachable: {type(exc).__name__}")
    finally:
        client.close()
    replies = celery_app.control.ping(timeout=2.0) or []
    workers = sorted(name for reply in replies for name in reply)
    checks["workers"] = workers
    if not workers:
        problems.append("no worker answered a ping")
    if problems:
        ctx.partial_result = checks
        raise DependencyUnavailableError("; ".join(problems))
    return checks
