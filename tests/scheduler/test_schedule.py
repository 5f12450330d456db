from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from celery.schedules import crontab, schedule

from gristmill.celery_app import celery_app
from gristmill.schedule_slots import slot_of
from gristmill.settings import Settings
from services.scheduler.schedule import build_beat_schedule


def test_beat_schedule_contents(test_settings: Settings) -> None:
    beat = build_beat_schedule(test_settings)
    assert {name: entry["task"] for name, entry in beat.items()} == {
        "daily-scrape-all": "gristmill.daily_scrape_all",
        "weekly-backfill-check": "gristmill.backfill_check",
        "monthly-cleanup-old-jobs": "gristmill.cleanup_old_jobs",
        "health-check": "gristmill.health_check",
    }
    daily = beat["daily-scrape-all"]["schedule"]
    assert isinstance(daily, crontab)
    assert daily.hour == {2}
    assert daily.minute == {0}
    weekly = beat["weekly-backfill-check"]["schedule"]
    assert weekly.day_of_week == {0}
    monthly = beat["monthly-cleanup-old-jobs"]["schedule"]
    assert monthly.day_of_month == {1}
    health = beat["health-check"]["schedule"]
    assert isinstance(health, schedule)
    assert health.run_every == timedelta(seconds=300)


def test_daily_scrape_time_is_configurable_and_utc(test_settings: Settings) -> None:
    settings = Settings.model_validate(
        {**test_settings.model_dump(), "daily_scrape_cron": "30 6 * * 1-5"}
    )
    daily = build_beat_schedule(settings)["daily-scrape-all"]["schedule"]
    assert daily.hour == {6}
    assert daily.minute == {30}
    assert daily.day_of_week == {1, 2, 3, 4, 5}
    assert celery_app.conf.timezone == "UTC"
    assert celery_app.conf.enable_utc is True


@pytest.mark.parametrize(
    ("expression", "message"),
    [("0 2 * *", "must have 5 fields"), ("99 2 * * *", "invalid"), ("a b c d e", "invalid")],
)
def test_invalid_cron_is_refused_naming_the_variable(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        Settings(daily_scrape_cron=expression)
    assert "daily_scrape_cron" in str(error.value)


def test_a_cron_slot_is_the_latest_matching_minute_and_an_interval_slot_is_aligned() -> None:
    daily = crontab(minute="0", hour="2")
    at = datetime(2026, 11, 29, 2, 0, 41, tzinfo=UTC)
    assert slot_of(daily, at) == datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    # Two schedulers that tick on either side of a minute boundary agree on the slot.
    assert slot_of(daily, at + timedelta(minutes=1, seconds=30)) == slot_of(daily, at)
    assert slot_of(daily, datetime(2026, 11, 29, 1, 59, tzinfo=UTC)) == datetime(
        2026, 11, 28, 2, 0, tzinfo=UTC
    )
    weekly = crontab(minute="0", hour="3", day_of_week="sun")
    assert slot_of(weekly, datetime(2026, 12, 2, 12, 0, tzinfo=UTC)) == datetime(
        2026, 11, 29, 3, 0, tzinfo=UTC
    )
    every_five_minutes = schedule(timedelta(seconds=300))
    assert slot_of(every_five_minutes, datetime(2026, 11, 29, 2, 7, 3, tzinfo=UTC)) == (
        datetime(2026, 11, 29, 2, 5, tzinfo=UTC)
    )
