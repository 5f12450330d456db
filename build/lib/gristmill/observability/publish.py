"""Count the task messages this process publishes and stamp each with its publish time.

The api, the scheduler and workers (fan-out children, retries) all publish; each serves its own
`celery_task_sent_total`, so the cluster total is a sum over every scrape target.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from celery.signals import after_task_publish, before_task_publish
from prometheus_client import Counter

# Read back by the worker to measure how long a message waited in its queue.
SENT_AT_HEADER = "gristmill_sent_at"

# Same name and labels as celery-exporter, so community dashboards keep working.
TASKS_SENT = Counter(
    "celery_task_sent",
    "Task messages published by this process.",
    ["name", "hostname", "queue_name"],
)

_HOSTNAME = socket.gethostname()


def _stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # Overwritten on every publish: a retry is a new message whose wait starts now, not when
    # the first attempt was sent.
    if headers is not None:
        headers[SENT_AT_HEADER] = time.time()


def _count_sent(
    sender: str | None = None,
    headers: dict[str, Any] | None = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    name = sender or (headers or {}).get("task") or "unknown"
    # Every Gristmill queue is bound with its own name as routing key (celery_app.task_queues).
    TASKS_SENT.labels(name=name, hostname=_HOSTNAME, queue_name=routing_key or "unknown").inc()


def install_publish_metrics() -> None:
    """Connect the publish hooks; call once at each service's start-up (repeat calls are no-ops)."""
    before_task_publish.connect(_stamp_sent_at, weak=False, dispatch_uid="gristmill-sent-at")
    after_task_publish.connect(_count_sent, weak=False, dispatch_uid="gristmill-count-sent")
