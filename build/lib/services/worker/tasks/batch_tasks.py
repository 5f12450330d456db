"""The plumbing task that scrapes many fan-out children in one message (not a job itself)."""

from __future__ import annotations

from typing import Any

from celery import Task

from gristmill.celery_app import celery_app
from gristmill.errors import DependencyUnavailableError
from gristmill.jobs.tasking import database_retry_countdown
from gristmill.jobs.types import SCRAPE_ACCOUNT_BATCH_TASK
from gristmill.scrape_jobs.batch import scrape_batch


@celery_app.task(name=SCRAPE_ACCOUNT_BATCH_TASK, bind=True, max_retries=None)
def scrape_account_batch(self: Task[Any, Any], job_ids: list[str]) -> dict[str, int]:
    """Each child keeps its own job row and outcome; the message only carries their ids."""
    try:
        return scrape_batch(job_ids)
    except DependencyUnavailableError as exc:
        raise self.retry(exc=exc, countdown=database_retry_countdown(self.request.retries)) from exc
