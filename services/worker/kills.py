"""Jobs killed at their hard time limit: recorded by the worker's main process at once.

Celery kills the pool process running a task past its hard time limit and reports it from the
main process (task_failure with TimeLimitExceeded). The job's row would otherwise stay
`running` until the orphan check notices its silent heartbeat; here it is put back to pending
with the reason, or dead-lettered after TASK_MAX_HARD_TIMEOUTS kills. Fan-out batches are
plumbing: their children come back through the orphan check.
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from datetime import datetime
from typing import Any

from billiard.exceptions import TimeLimitExceeded
from celery.signals import task_failure

from gristmill.clock import utc_now
from gristmill.db import Database
from gristmill.jobs.orphans import record_hard_timeout
from gristmill.jobs.types import JOB_TYPES
from gristmill.settings import get_settings

logger = logging.getLogger(__name__)

_JOB_TASKS = {spec.task_name for spec in JOB_TYPES.values()}


@functools.cache
def _main_process_database() -> Database:
    # The main process has no database of its own (pool children open theirs after the fork);
    # one connection, made on the first kill.
    return Database(get_settings(), pool_size=1)


@task_failure.connect(weak=False, dispatch_uid="gristmill-hard-time-limit")
def _on_hard_time_limit(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    if not isinstance(exception, TimeLimitExceeded) or task_id is None:
        return
    if getattr(sender, "name", None) not in _JOB_TASKS:
        return
    limit = float(exception.args[0]) if exception.args else 0.0
    # Off the consumer's event loop: Celery kills the pool process after this handler returns,
    # and the database may make us wait for the job's row. Celery reports a kill twice (on the
    # timeout, then when it reaps the process): the second report finds the job already put
    # back, or run again by a newer attempt, and changes nothing.
    threading.Thread(
        target=_record,
        args=(uuid.UUID(task_id), limit, utc_now()),
        name="hard-limit",
        daemon=True,
    ).start()


def _record(job_id: uuid.UUID, limit: float, killed_at: datetime) -> None:
    try:
        with _main_process_database().transaction() as session:
            done = record_hard_timeout(session, get_settings(), job_id, limit, killed_at)
    except Exception:
        # The orphan check still recovers the job once its heartbeat goes stale.
        logger.warning("cannot record the hard time limit kill of job %s", job_id, exc_info=True)
        return
    logger.warning("job %s killed at its hard time limit (%gs): %s", job_id, limit, done)
