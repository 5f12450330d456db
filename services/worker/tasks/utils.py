"""Plumbing tasks that are not jobs of their own."""

from __future__ import annotations

from gristmill.celery_app import celery_app
from gristmill.db import get_database
from gristmill.jobs.lifecycle import requeue_orphaned_jobs
from gristmill.jobs.types import REQUEUE_ORPHANS_TASK, SCRAPE_ACCOUNT_BATCH_TASK
from gristmill.scraping.batch import scrape_batch
from gristmill.settings import get_settings


@celery_app.task(name=SCRAPE_ACCOUNT_BATCH_TASK)
def scrape_account_batch(job_ids: list[str]) -> dict[str, int]:
    """Scrape many fan-out children at once; each keeps its own job row and outcome."""
    return scrape_batch(job_ids)


@celery_app.task(name=REQUEUE_ORPHANS_TASK)
def requeue_orphans() -> int:
    """Send again the jobs whose worker died mid-run (their heartbeat went stale)."""
    with get_database().transaction() as session:
        return len(requeue_orphaned_jobs(session, get_settings()))
