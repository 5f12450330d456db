"""Worker metrics and liveness, wired to Celery signals when this module is imported.

Importing only connects receivers; nothing runs until a worker starts. Main process: picks the
prometheus multiprocess directory (setting PROMETHEUS_MULTIPROC_DIR) before the pool forks
(worker_init), serves /metrics on WORKER_METRICS_PORT (0 disables), counts received and revoked
tasks, and on every Celery heartbeat touches WORKER_HEARTBEAT_FILE and refreshes the worker's
Redis record. Pool children: count started / succeeded / failed / retried tasks and observe
runtime and queue wait. Every path and port comes from the Settings the worker was started with.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery.signals import (
    heartbeat_sent,
    task_failure,
    task_postrun,
    task_prerun,
    task_received,
    task_retry,
    task_revoked,
    task_success,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from celery.worker.state import active_requests

from gristmill.observability import heartbeat, multiproc, task_metrics
from gristmill.observability.publish import SENT_AT_HEADER, install_publish_metrics
from gristmill.settings import get_settings

logger = logging.getLogger(__name__)

# The heartbeat runs in the consumer's event loop: a slow Redis must not stall consuming.
_REDIS_TIMEOUT_SECONDS = 1.0
_ERROR_LOG_INTERVAL_SECONDS = 60.0
_COMPACT_INTERVAL_SECONDS = 300.0


@dataclass
class _WorkerState:
    hostname: str = ""
    queues: tuple[str, ...] = ()
    controller: Any = None
    multiproc_dir: Path | None = None
    created_dir: bool = False
    metrics_files: multiproc.CompactingMultiProcessCollector | None = None
    last_compacted: float = 0.0
    redis_client: redis.Redis | None = None
    heartbeat_file: Path = field(default_factory=lambda: get_settings().worker_heartbeat_file)
    stopping: bool = False
    last_error_logged: float = 0.0
    consumer: Any = None


# Workers publish too (fan-out children, retries): count those messages and stamp them with
# their publish time, or child tasks would have no queue wait. Idempotent, connects only.
install_publish_metrics()

_state = _WorkerState()
_runtimes = task_metrics.RuntimeClock()
_failed_task_ids: OrderedDict[str, None] = OrderedDict()
_FAILED_IDS_KEPT = 10_000


@worker_init.connect(weak=False, dispatch_uid="gristmill-metrics-worker-init")
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    # worker_init runs in the main process after the queues are selected and before the pool
    # forks, so every child inherits the multiprocess directory.
    _state.hostname = str(sender.hostname)
    _state.queues = tuple(sorted(sender.app.amqp.queues.consume_from))
    _state.controller = sender
    settings = get_settings()
    _state.heartbeat_file = settings.worker_heartbeat_file
    _state.stopping = False
    _state.redis_client = redis.Redis.from_url(
        sender.app.conf.broker_url,
        socket_timeout=_REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
    )
    # Last, and guarded: a metrics directory that cannot be created must cost the metrics,
    # not the heartbeat (without it the liveness probe would restart the pod forever).
    try:
        _state.multiproc_dir, _state.created_dir = multiproc.prepare_multiprocess_dir(
            settings.prometheus_multiproc_dir
        )
    except OSError:
        logger.exception("cannot prepare the prometheus multiprocess directory")
        return
    _state.metrics_files = multiproc.CompactingMultiProcessCollector(_state.multiproc_dir)


@worker_ready.connect(weak=False, dispatch_uid="gristmill-metrics-worker-ready")
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    _state.consumer = sender
    _beat(interval_seconds=None)
    port = get_settings().worker_metrics_port
    if port and _state.metrics_files is not None:
        try:
            multiproc.serve_multiprocess_metrics(port, _state.metrics_files)
        except OSError:
            # Metrics are not worth a worker that refuses to start (e.g. two local workers on
            # the default port); the gap shows up as a scrape target that is down.
            logger.exception("cannot serve worker metrics on port %d", port)


@heartbeat_sent.connect(weak=False, dispatch_uid="gristmill-metrics-heartbeat")
def _on_heartbeat(sender: Any = None, **_: Any) -> None:
    _beat(interval_seconds=float(getattr(sender, "interval", 2.0)))
    _compact_now_and_then()


def _compact_now_and_then() -> None:
    # Scrapes fold the files of replaced pool children; this keeps their number bounded when
    # nobody scrapes (metrics port 0, or no Prometheus).
    now = time.monotonic()
    if _state.metrics_files is None or now - _state.last_compacted < _COMPACT_INTERVAL_SECONDS:
        return
    _state.last_compacted = now
    try:
        _state.metrics_files.compact()
    except OSError:
        _log_throttled("cannot fold the metric files of exited pool processes")


def _pool_size() -> int:
    controller = _state.controller
    if controller is None:
        return 0
    processes = getattr(getattr(controller, "pool", None), "num_processes", None)
    return int(processes if processes is not None else controller.concurrency or 0)


def _beat(interval_seconds: float | None) -> None:
    if _state.stopping or not _state.hostname:
        return
    # The liveness file is touched only while this worker can consume: its consumer holds a
    # broker connection and the broker answers. A worker that lost its broker, or whose event
    # loop is stuck (then this timer does not fire at all), lets the file go stale.
    if not _consumer_connected():
        _log_throttled("the consumer has no broker connection; liveness file not touched")
        return
    if _state.redis_client is not None:
        try:
            heartbeat.write_worker_record(
                _state.redis_client,
                hostname=_state.hostname,
                queues=_state.queues,
                active=len(active_requests),
                concurrency=_pool_size(),
                interval_seconds=interval_seconds or 2.0,
                now=time.time(),
            )
        except redis.RedisError:
            _log_throttled("cannot write the worker heartbeat record for %s", _state.hostname)
            return
    try:
        heartbeat.touch_heartbeat_file(_state.heartbeat_file)
    except OSError:
        _log_throttled("cannot touch the worker heartbeat file %s", _state.heartbeat_file)


def _consumer_connected() -> bool:
    connection = getattr(_state.consumer, "connection", None)
    return connection is None or bool(connection.connected)


def _log_throttled(message: str, *args: object) -> None:
    # Every 2 s while Redis is down would drown the log; once a minute says the same.
    now = time.monotonic()
    if now - _state.last_error_logged >= _ERROR_LOG_INTERVAL_SECONDS:
        _state.last_error_logged = now
        logger.warning(message, *args, exc_info=True)


@worker_shutdown.connect(weak=False, dispatch_uid="gristmill-metrics-worker-shutdown")
def _on_worker_shutdown(**_: Any) -> None:
    _state.stopping = True
    client = _state.redis_client
    if client is not None:
        try:
            # A clean stop is not an outage: the worker leaves the metrics instead of
            # turning into celery_worker_up 0.
            heartbeat.delete_worker_record(client, _state.hostname)
        except redis.RedisError:
            logger.warning("cannot delete the worker heartbeat record", exc_info=True)
        client.close()
    if _state.multiproc_dir is not None:
        multiproc.remove_multiprocess_dir(_state.multiproc_dir, _state.created_dir)


@worker_process_shutdown.connect(weak=False, dispatch_uid="gristmill-metrics-child-exit")
def _on_child_exit(pid: int | None = None, **_: Any) -> None:
    # Pool children are forked after worker_init, so they hold the directory it chose.
    multiproc.process_exited(pid if pid is not None else os.getpid(), _state.multiproc_dir)


def _labels(task: Any, request: Any) -> dict[str, str]:
    queue_name = task_metrics.queue_of(getattr(request, "delivery_info", None))
    if queue_name == task_metrics.UNKNOWN and len(_state.queues) == 1:
        # Hard time limits are reported by the main process without the message's delivery
        # info; a Gristmill worker consumes one queue, so that is where the task came from.
        queue_name = _state.queues[0]
    return task_metrics.task_labels(
        getattr(task, "name", None) or getattr(request, "task", None),
        getattr(request, "hostname", None) or _state.hostname,
        queue_name,
    )


@task_received.connect(weak=False, dispatch_uid="gristmill-metrics-received")
def _on_received(request: Any = None, **_: Any) -> None:
    labels = task_metrics.task_labels(
        getattr(request, "name", None),
        _state.hostname,
        task_metrics.queue_of(getattr(request, "delivery_info", None)),
    )
    task_metrics.TASKS_RECEIVED.labels(**labels).inc()


@task_prerun.connect(weak=False, dispatch_uid="gristmill-metrics-prerun")
def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    request = task.request
    labels = _labels(task, request)
    task_metrics.record_started(labels)
    task_metrics.record_queue_wait(
        labels, _header(request, SENT_AT_HEADER), getattr(request, "eta", None), time.time()
    )
    if task_id:
        _runtimes.start(task_id)


def _header(request: Any, name: str) -> Any:
    # Protocol 2 copies custom message headers onto the request; older paths keep them in
    # request.headers.
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


@task_postrun.connect(weak=False, dispatch_uid="gristmill-metrics-postrun")
def _on_postrun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id:
        _runtimes.stop(task_id, _labels(task, task.request))


@task_success.connect(weak=False, dispatch_uid="gristmill-metrics-success")
def _on_success(sender: Any = None, **_: Any) -> None:
    task_metrics.TASKS_SUCCEEDED.labels(**_labels(sender, sender.request)).inc()


@task_failure.connect(weak=False, dispatch_uid="gristmill-metrics-failure")
def _on_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    # Celery signals a hard time limit twice from the main process (on the timeout, then again
    # when the killed child's job is reaped); a failure is counted once per task id.
    if task_id is not None:
        if task_id in _failed_task_ids:
            return
        _failed_task_ids[task_id] = None
        if len(_failed_task_ids) > _FAILED_IDS_KEPT:
            _failed_task_ids.popitem(last=False)
    labels = _labels(sender, sender.request)
    task_metrics.TASKS_FAILED.labels(
        **labels, exception=task_metrics.exception_name(exception)
    ).inc()


@task_retry.connect(weak=False, dispatch_uid="gristmill-metrics-retry")
def _on_retry(sender: Any = None, request: Any = None, **_: Any) -> None:
    task_metrics.TASKS_RETRIED.labels(**_labels(sender, request)).inc()


@task_revoked.connect(weak=False, dispatch_uid="gristmill-metrics-revoked")
def _on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    task_metrics.TASKS_REVOKED.labels(**_labels(sender, request)).inc()
