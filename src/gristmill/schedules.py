"""The beat schedule as data, all in UTC.

The scheduler builds its beat entries from `schedule_entries(settings)`; the api reads the same
list to show each entry with its next run, without importing the scheduler service. Each firing
is recorded by the scheduler in the `schedule_runs` table (slot and job), where the api reads
the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.schedules import crontab, schedule

from gristmill.cron import parse_cron
from gristmill.jobs.types import JOB_TYPES, JobType
from gristmill.settings import Settings


@dataclass(frozen=True)
class ScheduleEntry:
    name: str
    # The job type each run creates (the scheduler records every firing as a job).
    job_type: JobType
    cron: str | None = None
    interval_seconds: float | None = None

    @property
    def task(self) -> str:
        return JOB_TYPES[self.job_type].task_name

    def celery_schedule(self) -> crontab | schedule:
        if self.cron is not None:
            return parse_cron(self.cron)
        assert self.interval_seconds is not None
        return schedule(timedelta(seconds=self.interval_seconds))

    def next_run(self, *, now: datetime, last_run: datetime | None) -> datetime:
        """When beat sends this entry next. A cron entry fires at its next matching minute; an
        interval entry one interval after its last run (now, if it never ran or is overdue)."""
        if self.cron is not None:
            return next_cron_time(self.cron, now)
        assert self.interval_seconds is not None
        if last_run is None:
            return now
        return max(last_run + timedelta(seconds=self.interval_seconds), now)


def next_cron_time(expression: str, after: datetime) -> datetime:
    """The first whole minute strictly after `after` that the 5-field cron expression matches."""
    # celery-types does not declare crontab's parsed field sets.
    spec: Any = parse_cron(expression)
    moment = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    # Day by day, then minute by minute inside a matching day: at most ~4 years of days for
    # "29 Feb", a few thousand minutes inside one day.
    for _ in range(366 * 5):
        # Celery's day_of_week counts Sunday as 0; Python's weekday() Monday as 0.
        day_matches = (
            moment.month in spec.month_of_year
            and moment.day in spec.day_of_month
            and (moment.isoweekday() % 7) in spec.day_of_week
        )
        if day_matches:
            for hour in sorted(h for h in spec.hour if h >= moment.hour):
                minutes = [
                    m for m in sorted(spec.minute) if hour > moment.hour or m >= moment.minute
                ]
                if minutes:
                    return moment.replace(hour=hour, minute=minutes[0])
        moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
    raise ValueError(f"cron expression {expression!r} never matches")


def schedule_entries(settings: Settings) -> list[ScheduleEntry]:
    return [
        ScheduleEntry(
            "daily-scrape-all",
            JobType.DAILY_SCRAPE_ALL,
            cron=settings.daily_scrape_cron,
        ),
        ScheduleEntry(
            "backfill-check",
            JobType.BACKFILL_CHECK,
            cron=settings.backfill_check_cron,
        ),
        ScheduleEntry(
            "cleanup-old-jobs",
            JobType.CLEANUP_OLD_JOBS,
            cron=settings.cleanup_cron,
        ),
        ScheduleEntry(
            "health-check",
            JobType.HEALTH_CHECK,
            interval_seconds=settings.health_check_interval_seconds,
        ),
    ]
