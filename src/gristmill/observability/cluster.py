"""Cluster-wide gauges read at scrape time from the broker Redis and PostgreSQL.

Served by every api replica with identical values: aggregate with max(), never sum(), across
api pods. A dependency that is down or slow never fails the scrape: its series are left out
and `gristmill_metrics_collector_up{source}` says 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select, text

from gristmill.celery_app import redis_list_names
from gristmill.db import Database
from gristmill.jobs.models import UNSENT_PREDICATE, DeadLetter, Job
from gristmill.jobs.types import JobStatus, JobType, Queue
from gristmill.observability.heartbeat import WorkerRecord, read_worker_records

logger = logging.getLogger(__name__)

# Job types the scheduler starts; their last success shows whether beat and workers keep up.
SCHEDULED_JOB_TYPES = (
    JobType.DAILY_SCRAPE_ALL,
    JobType.BACKFILL_CHECK,
    JobType.CLEANUP_OLD_JOBS,
    JobType.HEALTH_CHECK,
)

ALL_QUEUES = tuple(queue.value for queue in Queue)

T = TypeVar("T")


@dataclass(frozen=True)
class RedisSnapshot:
    queue_lengths: dict[str, int]
    workers: list[WorkerRecord]


@dataclass(frozen=True)
class DatabaseSnapshot:
    dead_letters: int
    jobs: dict[tuple[str, str], int]
    last_success: dict[str, float] = field(default_factory=dict)
    unsent: int = 0
    unsent_oldest_age_seconds: float = 0.0


def read_queue_lengths(client: redis.Redis, queues: Sequence[str] = ALL_QUEUES) -> dict[str, int]:
    """Messages waiting in each queue, summed over its Redis priority lists (one round trip)."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for name in redis_list_names(queue):
            pipe.llen(name)
    lengths = iter(pipe.execute())
    return {queue: sum(int(next(lengths)) for _ in redis_list_names(queue)) for queue in queues}


class _Source(Generic[T]):
    """One dependency read: at most one read in flight, a deadline per scrape, a short cache.

    Reads run in a daemon thread so a hung connection costs one scrape's deadline, not a
    stuck request thread per scrape, and never blocks the process from exiting.
    """

    def __init__(self, name: str, read: Callable[[], T], *, max_age: float, timeout: float) -> None:
        self.name = name
        self._read = read
        self._max_age = max_age
        self._timeout = timeout
        self._lock = threading.Lock()
        self._inflight: Future[T] | None = None
        self._cached: T | None = None
        self._cached_at = 0.0
        self.last_read_seconds = 0.0

    def get(self) -> T | None:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached_at < self._max_age:
                return self._cached
            if self._inflight is None:
                self._inflight = self._start()
            inflight = self._inflight
        try:
            value = inflight.result(timeout=self._timeout)
        except FutureTimeout:
            logger.warning("metrics: reading %s took longer than %ss", self.name, self._timeout)
            return None
        except Exception:
            logger.warning("metrics: reading %s failed", self.name, exc_info=True)
            return None
        with self._lock:
            self._cached, self._cached_at = value, time.monotonic()
        return value

    def _start(self) -> Future[T]:
        future: Future[T] = Future()

        def run() -> None:
            started = time.monotonic()
            try:
                future.set_result(self._read())
            except BaseException as exc:
                future.set_exception(exc)
            finally:
                self.last_read_seconds = time.monotonic() - started
                with self._lock:
                    self._inflight = None

        threading.Thread(target=run, name=f"metrics-{self.name}", daemon=True).start()
        return future


class ClusterCollector(Collector):
    """Queue depths, worker heartbeats, dead letters and job counts, read when scraped.

    `database_factory` is called on each database read (so it may be `gristmill.db.get_database`,
    initialised after the collector is registered); `redis_url` is the broker Redis.
    """

    def __init__(
        self,
        database_factory: Callable[[], Database],
        redis_url: str,
        *,
        queues: Sequence[str] = ALL_QUEUES,
        database_cache_seconds: float = 10.0,
        timeout_seconds: float = 4.0,
        statement_timeout_ms: int = 5000,
    ) -> None:
        self._database_factory = database_factory
        self._queues = tuple(queues)
        self._statement_timeout_ms = statement_timeout_ms
        self._redis = redis.Redis.from_url(
            redis_url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        # Queue depth must be fresh on every scrape; a 1M-row GROUP BY must not run per scrape.
        self._redis_source = _Source(
            "redis", self._read_redis, max_age=0.0, timeout=timeout_seconds
        )
        self._database_source = _Source(
            "database", self._read_database, max_age=database_cache_seconds, timeout=timeout_seconds
        )

    def describe(self) -> Iterable[Metric]:
        # Names only: registering must not touch Redis or PostgreSQL.
        return list(self._families(None, None))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self._redis_source.get(), self._database_source.get()))

    def close(self) -> None:
        self._redis.close()

    def _read_redis(self) -> RedisSnapshot:
        per_queue = read_queue_lengths(self._redis, self._queues)
        return RedisSnapshot(per_queue, read_worker_records(self._redis, now=time.time()))

    def _read_database(self) -> DatabaseSnapshot:
        database = self._database_factory()
        with database.engine.connect() as connection:
            # SET LOCAL lasts until the end of this read-only transaction only.
            connection.execute(
                text(f"SET LOCAL statement_timeout = {int(self._statement_timeout_ms)}")
            )
            dead_letters = connection.execute(
                select(func.count()).select_from(DeadLetter).where(DeadLetter.requeued_at.is_(None))
            ).scalar_one()
            jobs = {
                (str(status), str(job_type)): int(count)
                for status, job_type, count in connection.execute(
                    select(Job.status, Job.job_type, func.count()).group_by(
                        Job.status, Job.job_type
                    )
                )
            }
            last_success = {
                str(job_type): completed_at.timestamp()
                for job_type, completed_at in connection.execute(
                    select(Job.job_type, func.max(Job.completed_at))
                    .where(
                        Job.status == JobStatus.COMPLETED.value,
                        Job.job_type.in_([t.value for t in SCHEDULED_JOB_TYPES]),
                    )
                    .group_by(Job.job_type)
                )
                if completed_at is not None
            }
            unsent, unsent_age = connection.execute(
                select(
                    func.count(),
                    func.coalesce(
                        func.extract(
                            "epoch",
                            func.now() - func.min(func.coalesce(Job.run_after, Job.created_at)),
                        ),
                        0,
                    ),
                ).where(
                    text(UNSENT_PREDICATE),
                    or_(Job.run_after.is_(None), Job.run_after <= func.now()),
                )
            ).one()
            connection.rollback()
        return DatabaseSnapshot(
            int(dead_letters), jobs, last_success, int(unsent), max(float(unsent_age), 0.0)
        )

    def _families(
        self, redis_snapshot: RedisSnapshot | None, database_snapshot: DatabaseSnapshot | None
    ) -> Iterable[Metric]:
        yield from _redis_families(redis_snapshot, self._queues)
        yield from _database_families(database_snapshot)
        up = GaugeMetricFamily(
            "gristmill_metrics_collector_up",
            "1 if the last read of this source for /metrics succeeded.",
            labels=["source"],
        )
        took = GaugeMetricFamily(
            "gristmill_metrics_collector_read_seconds",
            "How long the most recent read of this source took.",
            labels=["source"],
        )
        for source, snapshot in (
            (self._redis_source, redis_snapshot),
            (self._database_source, database_snapshot),
        ):
            up.add_metric([source.name], 1.0 if snapshot is not None else 0.0)
            took.add_metric([source.name], source.last_read_seconds)
        yield up
        yield took


def _redis_families(snapshot: RedisSnapshot | None, queues: Sequence[str]) -> Iterable[Metric]:
    length = GaugeMetricFamily(
        "celery_queue_length",
        "Messages waiting in the queue, summed over its Redis priority lists.",
        labels=["queue_name"],
    )
    worker_up = GaugeMetricFamily(
        "celery_worker_up",
        "1 while the worker heartbeats; 0 once it missed 3 heartbeats, until its record expires.",
        labels=["hostname"],
    )
    active = GaugeMetricFamily(
        "celery_worker_tasks_active",
        "Tasks the worker is executing, as of its last heartbeat.",
        labels=["hostname"],
    )
    age = GaugeMetricFamily(
        "gristmill_worker_last_heartbeat_age_seconds",
        "Seconds since the worker's last heartbeat (measured on the Redis clock).",
        labels=["hostname"],
    )
    workers_per_queue = GaugeMetricFamily(
        "celery_active_worker_count",
        "Workers up and consuming the queue.",
        labels=["queue_name"],
    )
    processes_per_queue = GaugeMetricFamily(
        "celery_active_process_count",
        "Pool processes of the workers up and consuming the queue.",
        labels=["queue_name"],
    )
    if snapshot is not None:
        for queue in queues:
            length.add_metric([queue], snapshot.queue_lengths.get(queue, 0))
            consumers = [w for w in snapshot.workers if w.up and queue in w.queues]
            workers_per_queue.add_metric([queue], len(consumers))
            processes_per_queue.add_metric([queue], sum(w.concurrency for w in consumers))
        for worker in snapshot.workers:
            worker_up.add_metric([worker.hostname], 1.0 if worker.up else 0.0)
            active.add_metric([worker.hostname], worker.active)
            age.add_metric([worker.hostname], worker.age_seconds)
    return (length, worker_up, active, age, workers_per_queue, processes_per_queue)


def _database_families(snapshot: DatabaseSnapshot | None) -> Iterable[Metric]:
    dead = GaugeMetricFamily(
        "gristmill_dead_letters", "Dead-letter jobs not yet re-run (requeued_at IS NULL)."
    )
    jobs = GaugeMetricFamily(
        "gristmill_jobs", "Job rows by status and type.", labels=["status", "job_type"]
    )
    last = GaugeMetricFamily(
        "gristmill_scheduled_job_last_success_timestamp_seconds",
        "Unix time the newest completed job of this scheduled type finished.",
        labels=["job_type"],
    )
    unsent = GaugeMetricFamily(
        "gristmill_jobs_unsent",
        "Pending jobs due to run whose message is not in the broker yet (the outbox).",
    )
    unsent_age = GaugeMetricFamily(
        "gristmill_jobs_unsent_oldest_age_seconds",
        "How long the oldest unsent due job has waited for the outbox relay to send it.",
    )
    if snapshot is not None:
        dead.add_metric([], snapshot.dead_letters)
        unsent.add_metric([], snapshot.unsent)
        unsent_age.add_metric([], snapshot.unsent_oldest_age_seconds)
        # Every combination, zeros included, so a rate or ratio never sees a missing series.
        for status in JobStatus:
            for job_type in JobType:
                count = snapshot.jobs.get((status.value, job_type.value), 0)
                jobs.add_metric([status.value, job_type.value], count)
        for job_type_name, timestamp in sorted(snapshot.last_success.items()):
            last.add_metric([job_type_name], timestamp)
    return (dead, jobs, last, unsent, unsent_age)
