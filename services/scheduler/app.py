"""The scheduler service: `celery -A services.scheduler.app beat` (one replica, see the chart)."""

from __future__ import annotations

from typing import Any

from celery.signals import beat_init

from gristmill.celery_app import celery_app, configure_celery
from gristmill.db import init_database
from gristmill.events import init_event_publisher
from gristmill.jobs.dispatch import start_dispatcher
from gristmill.logging import configure_logging
from gristmill.observability.publish import install_publish_metrics
from gristmill.settings import get_settings
from services.scheduler.metrics import start_scheduler_metrics
from services.scheduler.schedule import build_beat_schedule

settings = get_settings()
configure_logging(settings)
configure_celery(settings)
celery_app.conf.update(
    beat_schedule=build_beat_schedule(settings),
    beat_scheduler="services.scheduler.scheduler:JobRecordingScheduler",
    beat_schedule_filename=str(settings.beat_schedule_file),
)


@beat_init.connect
def _start(**_: Any) -> None:
    database = init_database(settings, pool_size=2)
    init_event_publisher(settings.redis_url.get_secret_value())
    # The scheduler relays the outbox too, so jobs are sent even with no api running.
    start_dispatcher(settings, lambda: database, relay=True)
    install_publish_metrics()
    start_scheduler_metrics()


app = celery_app
