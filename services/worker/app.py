"""The worker service: `celery -A services.worker.app worker --queues <q>` (see the Procfile)."""

from __future__ import annotations

from typing import Any

from gristmill.observability.multiproc import prepare_multiprocess_dir
from gristmill.settings import get_settings

settings = get_settings()
# First, before the imports below create metrics: prometheus_client decides when a metric is
# created whether it writes to the multiprocess directory (which must exist by then), and the
# pool children forked later inherit that decision.
prepare_multiprocess_dir(settings.prometheus_multiproc_dir)

from celery.signals import worker_process_init, worker_process_shutdown  # noqa: E402

from gristmill.celery_app import celery_app, configure_celery  # noqa: E402
from gristmill.db import get_database, init_database  # noqa: E402
from gristmill.events import init_event_publisher  # noqa: E402
from gristmill.gc_tuning import tune_for_serving  # noqa: E402
from gristmill.jobs.dispatch import start_dispatcher  # noqa: E402
from gristmill.logging import configure_logging  # noqa: E402

configure_logging(settings)
configure_celery(settings)

# Registers the tasks, the worker's metrics and heartbeat hooks, and the hard-limit handler.
import services.worker.kills  # noqa: E402,F401
import services.worker.signals  # noqa: E402,F401
import services.worker.tasks  # noqa: E402,F401
from gristmill.scrapers.client import tls_context  # noqa: E402

# Loaded once here, inherited by every pool process forked later.
tls_context()


@worker_process_init.connect
def _open_database(**_: Any) -> None:
    # Each pool process opens its own connections after the fork.
    database = init_database(settings, pool_size=2)
    tune_for_serving()
    init_event_publisher(settings.redis_url.get_secret_value())
    # The fast path only: fan-out children and nothing else are sent from workers; the
    # relay runs in the api and scheduler.
    start_dispatcher(settings, lambda: database, relay=False)


@worker_process_shutdown.connect
def _close_database(**_: Any) -> None:
    get_database().dispose()


app = celery_app
