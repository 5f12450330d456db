"""Five-field cron expressions (minute hour day-of-month month day-of-week), always in UTC."""

from __future__ import annotations

from celery.schedules import crontab


def parse_cron(expression: str) -> crontab:
    """Turn a standard cron expression into a Celery crontab, or raise ValueError saying why."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron expression {expression!r} must have 5 fields "
            "(minute hour day-of-month month day-of-week)"
        )
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        schedule = crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
    except Exception as exc:  # celery raises ValueError or its own ParseException
        raise ValueError(f"cron expression {expression!r} is invalid: {exc}") from exc
    return schedule
