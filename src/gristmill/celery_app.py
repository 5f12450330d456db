"""The one Celery app. The api and scheduler send tasks through it by name; the worker runs them.

`configure_celery(settings)` is called by each service at start-up, so importing this module
never reads the environment.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue as KombuQueue

from gristmill.jobs.types import (
    CHILD_QUEUE,
    JOB_TYPES,
    SCRAPE_ACCOUNT_BATCH_TASK,
    Queue,
)
from gristmill.settings import Settings

celery_app = Celery("gristmill")

PRIORITY_STEPS = list(range(10))
PRIORITY_SEPARATOR = ":"


def redis_list_names(queue: str) -> list[str]:
    """Every Redis list that holds messages of `queue` (kombu keeps one list per priority)."""
    return [queue] + [f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS[1:]]


def time_limits(settings: Settings, limit_class: str) -> tuple[float, float]:
    soft = getattr(settings, f"{limit_class}_soft_time_limit_seconds")
    hard = getattr(settings, f"{limit_class}_hard_time_limit_seconds")
    return float(soft), float(hard)


def _task_annotations(settings: Settings) -> dict[str, dict[str, Any]]:
    annotations: dict[str, dict[str, Any]] = {}
    for spec in JOB_TYPES.values():
        _, hard = time_limits(settings, spec.limits)
        annotations[spec.task_name] = {"time_limit": hard}
    _, scrape_hard = time_limits(settings, "scrape")
    annotations[SCRAPE_ACCOUNT_BATCH_TASK] = {"time_limit": scrape_hard}
    return annotations


def _task_routes() -> dict[str, dict[str, str]]:
    routes = {spec.task_name: {"queue": spec.queue.value} for spec in JOB_TYPES.values()}
    routes[SCRAPE_ACCOUNT_BATCH_TASK] = {"queue": CHILD_QUEUE.value}
    return routes


def configure_celery(settings: Settings) -> Celery:
    # A message a worker took and never acknowledged (its pod was SIGKILLed holding it) goes
    # back to its queue after the visibility timeout; every worker's consumer sweeps for such
    # messages every few seconds. A long-running job's message is handed out again too: the
    # second delivery finds the job running and does nothing (the claim), so a short timeout
    # costs a duplicate, never a double run.
    visibility_timeout = settings.broker_visibility_timeout_seconds
    # Drop pooled broker connections and producers made under an earlier configuration (the
    # same reset Celery does after a fork); only tests reconfigure a running process.
    celery_app._after_fork()  # type: ignore[attr-defined]
    celery_app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
            # A blackholed Redis must fail a publish, not hang the thread that sends.
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "priority_steps": PRIORITY_STEPS,
            "sep": PRIORITY_SEPARATOR,
            "queue_order_strategy": "priority",
        },
        result_backend_transport_options={"visibility_timeout": visibility_timeout},
        result_expires=3600,
        task_ignore_result=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        task_queues=[KombuQueue(queue.value, routing_key=queue.value) for queue in Queue],
        task_default_queue=Queue.DEFAULT.value,
        task_default_priority=5,
        task_routes=_task_routes(),
        task_annotations=_task_annotations(settings),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=settings.worker_send_task_events,
        # task-sent events double the cost of every publish; celery_task_sent_total is counted
        # by the publishers themselves (observability/publish.py).
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        # Children are replaced when their memory grows, not after a number of tasks (see
        # Settings.worker_max_memory_per_child_mb); Celery counts the limit in KiB.
        worker_max_tasks_per_child=None,
        worker_max_memory_per_child=settings.worker_max_memory_per_child_mb * 1024 or None,
        beat_max_loop_interval=30,
    )
    return celery_app
