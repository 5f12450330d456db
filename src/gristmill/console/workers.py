"""Workers as the console shows them: Celery workers from their heartbeat records in Redis and,
inside Kubernetes, the worker pods of each pool."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import redis
from kubernetes.client.exceptions import ApiException

from gristmill.console.pods import PodLister, WorkerPod
from gristmill.observability.heartbeat import WorkerRecord, read_worker_records

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerStatus:
    pool: str
    hostname: str
    queues: tuple[str, ...]
    concurrency: int
    active: int
    last_heartbeat: float
    heartbeat_age_seconds: float
    up: bool


@dataclass(frozen=True)
class PoolPods:
    pool: str
    pods: list[WorkerPod]


@dataclass(frozen=True)
class WorkersView:
    workers: list[WorkerStatus]
    # None outside Kubernetes; otherwise the pods per pool (an error says why they are missing).
    pods: list[PoolPods] | None = None
    pods_error: str | None = None
    read_at: float = field(default_factory=time.time)


def pool_of(hostname: str) -> str:
    # Workers are named "<pool>@<host>" by the Procfile and the chart.
    return hostname.split("@", 1)[0] if "@" in hostname else hostname


def _status(record: WorkerRecord) -> WorkerStatus:
    return WorkerStatus(
        pool=pool_of(record.hostname),
        hostname=record.hostname,
        queues=record.queues,
        concurrency=record.concurrency,
        active=record.active,
        last_heartbeat=record.last_heartbeat,
        heartbeat_age_seconds=round(record.age_seconds, 3),
        up=record.up,
    )


def read_workers(client: redis.Redis, pod_lister: PodLister | None = None) -> WorkersView:
    records = read_worker_records(client, now=time.time())
    workers = sorted((_status(r) for r in records), key=lambda w: (w.pool, w.hostname))
    if pod_lister is None:
        return WorkersView(workers)
    try:
        pods = pod_lister.list_pods()
    except ApiException as exc:  # refusing (RBAC off, token expired): show why, not a 500
        error = f"the Kubernetes API answered {exc.status} {exc.reason}"
        logger.warning("cannot list worker pods: %s", error)
        return WorkersView(workers, pods=[], pods_error=error)
    except Exception as exc:  # unreachable, timed out
        error = f"the Kubernetes API did not answer: {type(exc).__name__}"
        logger.warning("cannot list worker pods: %s", error)
        return WorkersView(workers, pods=[], pods_error=error)
    by_pool: dict[str, list[WorkerPod]] = {}
    for pod in pods:
        by_pool.setdefault(pod.pool or "unknown", []).append(pod)
    return WorkersView(workers, pods=[PoolPods(pool, by_pool[pool]) for pool in sorted(by_pool)])
