from __future__ import annotations

from gristmill.celery_app import celery_app, configure_celery, redis_list_names
from gristmill.jobs.types import JOB_TYPES, JobType
from gristmill.settings import Settings


def test_celery_is_configured_for_safe_redelivery(test_settings: Settings) -> None:
    configure_celery(test_settings)
    conf = celery_app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.timezone == "UTC"
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    # Task events cost a publish each: off unless a monitor (Flower) switches them on.
    assert conf.worker_send_task_events is False
    # Pool processes are replaced for their memory, never after a count of tasks.
    assert conf.worker_max_tasks_per_child is None
    assert conf.worker_max_memory_per_child == 300 * 1024
    options = conf.broker_transport_options
    # Stranded messages come back within the visibility timeout plus one restore sweep.
    assert options["visibility_timeout"] == test_settings.broker_visibility_timeout_seconds
    assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] <= 5
    assert options["priority_steps"] == list(range(10))
    assert [queue.name for queue in conf.task_queues] == ["high", "default", "low"]


def test_routes_and_hard_time_limits_follow_the_job_types(test_settings: Settings) -> None:
    configure_celery(test_settings)
    routes = celery_app.conf.task_routes
    annotations = celery_app.conf.task_annotations
    assert routes["gristmill.scrape_account"] == {"queue": "high"}
    assert routes["gristmill.scrape_all_accounts"] == {"queue": "default"}
    assert routes["gristmill.scrape_account_batch"] == {"queue": "default"}
    assert routes["gristmill.backfill_account"] == {"queue": "low"}
    assert routes["gristmill.cleanup_old_jobs"] == {"queue": "low"}
    backfill = JOB_TYPES[JobType.BACKFILL_ACCOUNT].task_name
    assert annotations[backfill]["time_limit"] == test_settings.backfill_hard_time_limit_seconds


def test_every_priority_list_of_a_queue_is_named() -> None:
    assert redis_list_names("high") == ["high"] + [f"high:{p}" for p in range(1, 10)]


def test_a_memory_limit_of_zero_keeps_pool_processes(test_settings: Settings) -> None:
    configure_celery(test_settings.model_copy(update={"worker_max_memory_per_child_mb": 0}))
    assert celery_app.conf.worker_max_memory_per_child is None
    configure_celery(test_settings)
