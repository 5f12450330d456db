"""Beat's schedule, built from the core's schedule data (`gristmill.schedules`), all in UTC."""

from __future__ import annotations

from typing import Any

from gristmill.schedules import schedule_entries
from gristmill.settings import Settings


def build_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        entry.name: {"task": entry.task, "schedule": entry.celery_schedule()}
        for entry in schedule_entries(settings)
    }
