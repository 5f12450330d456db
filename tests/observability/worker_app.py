"""A minimal Celery worker app for the observability tests, independent of the real tasks.

Gristmill's Celery app with the worker metrics signals and three tiny tasks, so the metrics
plumbing (prefork children, multiprocess files, heartbeat record) is tested with real worker
processes: `celery -A tests.observability.worker_app worker --pool prefork ...`.
"""

from __future__ import annotations

from typing import Any

import services.worker.signals  # noqa: F401  (connects the metrics receivers)
from gristmill.celery_app import celery_app, configure_celery
from gristmill.settings import Settings

configure_celery(Settings())
app = celery_app

OK_TASK = "obs.ok"
FAIL_TASK = "obs.fail"
RETRY_TASK = "obs.retry"
SLEEP_TASK = "obs.sleep"
HANG_TASK = "obs.hang"


@celery_app.task(name=OK_TASK)
def succeed() -> str:
    return "ok"


@celery_app.task(name=FAIL_TASK)
def fail() -> None:
    raise ValueError("obs.fail always fails")


@celery_app.task(name=RETRY_TASK, bind=True, max_retries=1, default_retry_delay=0)
def retry_once(self: Any) -> str:
    if self.request.retries == 0:
        raise self.retry()
    return "retried"


@celery_app.task(name=SLEEP_TASK)
def sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)


# The hard limit kills the pool child; the main process reports the failure.
@celery_app.task(name=HANG_TASK, time_limit=1)
def hang() -> None:
    import time

    time.sleep(30)
