"""The beat schedule, all in UTC."""

from __future__ import annotations

from typing import Any

from celery.schedules import schedule

from gristmill.cron import parse_cron
from gristmill.jobs.types import JOB_TYPES, JobType
from gristmill.settings import Settings


def build_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "daily-scrape-all": {
            "task": JOB_TYPES[JobType.DAILY_SCRAPE_ALL].task_name,
            "schedule": parse_cron(settings.daily_scrape_cron),
        },
        "backfill-check": {
            "task": JOB_TYPES[JobType.BACKFILL_CHECK].task_name,
            "schedule": parse_cron(settings.backfill_check_cron),
        },
        "cleanup-old-jobs": {
            "task": JOB_TYPES[JobType.CLEANUP_OLD_JOBS].task_name,
            "schedule": parse_cron(settings.cleanup_cron),
        },
        "health-check": {
            "task": JOB_TYPES[JobType.HEALTH_CHECK].task_name,
            "schedule": schedule(settings.health_check_interval_seconds),
        },
    }
