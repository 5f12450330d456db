"""Scheduler (beat) metrics on the SCHEDULER_METRICS_PORT setting (default 9809; 0 disables).

Beat is a single process, so the default registry is enough: `celery_task_sent_total` for the
messages beat publishes (needs `install_publish_metrics()`), plus process and Python runtime
metrics. Comparing beat's sends with the jobs' last success tells "beat stopped sending" apart
from "workers stopped finishing".
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import start_http_server

from gristmill.settings import get_settings

logger = logging.getLogger(__name__)

_started = threading.Event()


def start_scheduler_metrics(port: int | None = None, addr: str = "0.0.0.0") -> int | None:
    """Serve /metrics from a daemon thread once per process; returns the port, or None if off.

    `port` defaults to the SCHEDULER_METRICS_PORT setting.
    """
    if port is None:
        port = get_settings().scheduler_metrics_port
    if port == 0:
        return None
    if _started.is_set():
        return port
    try:
        start_http_server(port, addr=addr)
    except OSError:
        # A scheduler that cannot expose metrics must still schedule.
        logger.exception("cannot serve scheduler metrics on port %d", port)
        return None
    _started.set()
    logger.info("scheduler metrics on http://%s:%d/metrics", addr, port)
    return port
