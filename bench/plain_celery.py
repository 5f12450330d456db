"""The plain peer of Gristmill's workers: a Celery no-op task with the same pool settings.

Prefork, `acks_late`, prefetch 1, JSON, the Redis broker: what Gristmill's workers use,
without any job bookkeeping. Drained, it does nothing at all (the benchmark watches the queue
empty); given `sent_at`, it records how long after sending it started (Redis list
`LATENCIES_KEY`), for the enqueue-to-start latency.

    celery -A bench.plain_celery worker --queues plain-bench --concurrency 2 --pool prefork
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery
from celery.signals import worker_process_init

from bench.plain_api import QUEUE, TASK_NAME

LATENCIES_KEY = "plain-bench:latencies"

app = Celery("plain", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
)
_redis: redis.Redis | None = None


@worker_process_init.connect
def _connect(**_: object) -> None:
    global _redis
    _redis = redis.Redis.from_url(app.conf.broker_url)


@app.task(name=TASK_NAME)
def noop(account_key: str = "", sent_at: float | None = None) -> None:
    if sent_at is not None and _redis is not None:
        _redis.rpush(LATENCIES_KEY, time.time() - sent_at)
