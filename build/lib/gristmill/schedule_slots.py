"""Which slot a beat entry fires for, so that a slot fires once whatever the number of beats.

A cron entry's slot is the latest minute its expression matches at or before now; an interval
entry's slot is now rounded down to a multiple of the interval (from the Unix epoch). Two
schedulers running at once during a bad rollout compute the same slot and the second one's
record of it is refused by the `schedule_runs` primary key.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from celery.schedules import crontab, schedule

from gristmill.clock import utc_now

# A monthly entry matches at least once in 31 days; a year covers "29 February" entries.
_MAX_MINUTES_BACK = 366 * 24 * 60


def slot_of(entry_schedule: object, now: datetime | None = None) -> datetime:
    """The slot a beat entry with this schedule (a crontab or an interval) fires for now."""
    now = now or utc_now()
    if isinstance(entry_schedule, crontab):
        return _latest_cron_minute(entry_schedule, now.replace(second=0, microsecond=0))
    if not isinstance(entry_schedule, schedule):
        raise TypeError(f"unsupported beat schedule {entry_schedule!r}")
    seconds = float(getattr(entry_schedule, "run_every").total_seconds())  # noqa: B009
    epoch_seconds = now.timestamp()
    return datetime.fromtimestamp(epoch_seconds - epoch_seconds % seconds, tz=now.tzinfo)


def _latest_cron_minute(cron: crontab, now: datetime) -> datetime:
    # celery's crontab keeps each field as the set of values it matches.
    fields: dict[str, set[int]] = {
        name: set(getattr(cron, name))
        for name in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
    }
    moment = now
    for _ in range(_MAX_MINUTES_BACK):
        if (
            moment.minute in fields["minute"]
            and moment.hour in fields["hour"]
            and moment.day in fields["day_of_month"]
            and moment.month in fields["month_of_year"]
            # crontab counts days of the week from Sunday = 0; isoweekday has Sunday = 7.
            and moment.isoweekday() % 7 in fields["day_of_week"]
        ):
            return moment
        moment -= timedelta(minutes=1)
    return now
