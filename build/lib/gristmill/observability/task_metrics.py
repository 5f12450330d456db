"""Per-task counters and histograms, recorded by worker processes.

Names and labels follow celery-exporter (`celery_task_<event>_total{name,hostname,queue_name}`,
`celery_task_runtime`) so its community dashboards and alerts work on Gristmill; `hostname` is
the Celery nodename (`high@pod-name`), unique per worker. In prefork workers these live in
prometheus multiprocess files and are served by the worker's main process.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram

TASK_LABELS = ("name", "hostname", "queue_name")

# Scrapes take milliseconds, backfills up to half an hour (BACKFILL_HARD_TIME_LIMIT_SECONDS).
RUNTIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
# From "picked up at once" to "waited behind a several-hour backlog".
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 21600)

TASKS_RECEIVED = Counter(
    "celery_task_received", "Task messages the worker received from the broker.", TASK_LABELS
)
TASKS_STARTED = Counter("celery_task_started", "Task executions started.", TASK_LABELS)
TASKS_SUCCEEDED = Counter("celery_task_succeeded", "Task executions that succeeded.", TASK_LABELS)
TASKS_FAILED = Counter(
    "celery_task_failed",
    "Task executions that failed for good (no retry left or not retryable).",
    (*TASK_LABELS, "exception"),
)
TASKS_RETRIED = Counter(
    "celery_task_retried", "Task executions that failed and were scheduled again.", TASK_LABELS
)
TASKS_REVOKED = Counter("celery_task_revoked", "Tasks revoked (cancelled).", TASK_LABELS)
TASK_RUNTIME = Histogram(
    "celery_task_runtime",
    "Seconds a task execution took, whatever its outcome.",
    TASK_LABELS,
    buckets=RUNTIME_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "gristmill_task_queue_wait_seconds",
    "Seconds from publish (or ETA, if later) until a worker started the task.",
    TASK_LABELS,
    buckets=QUEUE_WAIT_BUCKETS,
)

UNKNOWN = "unknown"


def queue_of(delivery_info: Mapping[str, Any] | None) -> str:
    """The queue a message came from: Gristmill binds each queue with its own name as key."""
    info = delivery_info or {}
    return str(info.get("routing_key") or info.get("queue") or UNKNOWN)


def task_labels(name: str | None, hostname: str | None, queue_name: str) -> dict[str, str]:
    return {"name": name or UNKNOWN, "hostname": hostname or UNKNOWN, "queue_name": queue_name}


def record_started(labels: Mapping[str, str]) -> None:
    TASKS_STARTED.labels(**labels).inc()
    # Create the outcome series at 0 so rates and failure ratios exist before the first
    # failure or retry happens (a missing series makes a ratio vanish, not read 0).
    TASKS_SUCCEEDED.labels(**labels)
    TASKS_RETRIED.labels(**labels)


def record_queue_wait(labels: Mapping[str, str], sent_at: Any, eta: Any, now: float) -> None:
    """Observe the wait since the message was published, or since its ETA for delayed tasks."""
    try:
        ready_at = float(sent_at)
    except (TypeError, ValueError):
        return
    eta_at = _eta_timestamp(eta)
    if eta_at is not None:
        ready_at = max(ready_at, eta_at)
    # Clocks of publisher and worker pods differ by a little; never observe a negative wait.
    QUEUE_WAIT.labels(**labels).observe(max(now - ready_at, 0.0))


def _eta_timestamp(eta: Any) -> float | None:
    if isinstance(eta, str) and eta:
        try:
            eta = datetime.fromisoformat(eta)
        except ValueError:
            return None
    if not isinstance(eta, datetime):
        return None
    # Celery sends aware UTC ETAs (enable_utc); a naive one can only mean UTC here too.
    return (eta if eta.tzinfo else eta.replace(tzinfo=UTC)).timestamp()


def exception_name(exception: BaseException | None) -> str:
    return type(exception).__name__ if exception is not None else UNKNOWN


class RuntimeClock:
    """Start times of the tasks running in this process, keyed by task id."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def start(self, task_id: str) -> None:
        self._started[task_id] = time.monotonic()

    def stop(self, task_id: str, labels: Mapping[str, str]) -> None:
        started = self._started.pop(task_id, None)
        if started is not None:
            TASK_RUNTIME.labels(**labels).observe(time.monotonic() - started)
