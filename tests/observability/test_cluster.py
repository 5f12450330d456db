"""The cluster collector against real Redis and PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import redis
from celery import Celery

from gristmill.celery_app import redis_list_names
from gristmill.clock import utc_now
from gristmill.db import Database
from gristmill.jobs.models import DeadLetter
from gristmill.jobs.types import JobStatus, JobType, Queue
from gristmill.observability.cluster import ALL_QUEUES, ClusterCollector
from gristmill.observability.heartbeat import (
    WORKER_INDEX_KEY,
    worker_key,
    write_worker_record,
)
from gristmill.settings import Settings
from tests.factories import make_job
from tests.observability.support import samples_of, series, value
from tests.support.stack import free_port, wait_until


def test_collects_every_gristmill_queue_by_default() -> None:
    assert set(ALL_QUEUES) == {queue.value for queue in Queue}


def test_queue_depth_counts_every_priority_list(
    test_settings: Settings, test_broker: Celery, redis_client: redis.Redis, database: Database
) -> None:
    # Queues of this test only: the session's real workers (if started) never consume them.
    prefix = f"obsq-{uuid.uuid4().hex[:6]}"
    priorities = {f"{prefix}-high": [0, 0, 3, 9], f"{prefix}-default": [5, 7], f"{prefix}-low": []}
    for queue, steps in priorities.items():
        for priority in steps:
            test_broker.send_task("gristmill.obs_probe", queue=queue, priority=priority)

    high = f"{prefix}-high"
    # The messages really are spread over the priority sub-lists, not in one list.
    assert [redis_client.llen(name) for name in redis_list_names(high)] == [
        2,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        1,
    ]
    cluster = ClusterCollector(lambda: database, test_settings.broker_url, queues=list(priorities))
    try:
        samples = samples_of(cluster.collect())
    finally:
        cluster.close()
    for queue, steps in priorities.items():
        assert value(samples, "celery_queue_length", queue_name=queue) == len(steps)
    assert value(samples, "gristmill_metrics_collector_up", source="redis") == 1


def test_dead_letters_jobs_and_last_success_come_from_rows(
    clean_db: Database, collector: ClusterCollector
) -> None:
    now = utc_now().replace(microsecond=0)
    with clean_db.transaction() as session:
        for status, count in ((JobStatus.PENDING, 3), (JobStatus.FAILED, 2)):
            for _ in range(count):
                make_job(session, JobType.SCRAPE_PLATFORM, status=status)
        failed = [
            make_job(session, JobType.BACKFILL_ACCOUNT, status=JobStatus.FAILED) for _ in range(5)
        ]
        for index, job in enumerate(failed):
            session.add(
                DeadLetter(
                    job_id=job.job_id,
                    job_type=job.job_type,
                    error_message="boom",
                    attempts=3,
                    # Two were re-run already: they are no longer dead letters.
                    requeued_at=now if index < 2 else None,
                )
            )
        for hours_ago in (30, 5):
            make_job(
                session,
                JobType.DAILY_SCRAPE_ALL,
                status=JobStatus.COMPLETED,
                completed_at=now - timedelta(hours=hours_ago),
            )
        # A later failure is not a success.
        make_job(session, JobType.DAILY_SCRAPE_ALL, status=JobStatus.FAILED, completed_at=now)

    samples = samples_of(collector.collect())

    assert value(samples, "gristmill_dead_letters") == 3
    jobs = {
        (labels["status"], labels["job_type"]): samples[
            ("gristmill_jobs", frozenset(labels.items()))
        ]
        for labels in series(samples, "gristmill_jobs")
    }
    assert jobs[("pending", "scrape_platform")] == 3
    assert jobs[("failed", "scrape_platform")] == 2
    assert jobs[("failed", "backfill_account")] == 5
    # Every status x type pair is exported, zeros included.
    assert len(jobs) == len(JobStatus) * len(JobType)
    assert jobs[("running", "health_check")] == 0
    last = value(
        samples,
        "gristmill_scheduled_job_last_success_timestamp_seconds",
        job_type="daily_scrape_all",
    )
    assert last == (now - timedelta(hours=5)).timestamp()
    assert value(samples, "gristmill_metrics_collector_up", source="database") == 1


def test_worker_heartbeat_record_makes_worker_up(
    redis_client: redis.Redis, collector: ClusterCollector
) -> None:
    hostname = f"high@obs-{uuid.uuid4().hex[:6]}"
    write_worker_record(
        redis_client,
        hostname=hostname,
        queues=["high"],
        active=2,
        concurrency=4,
        interval_seconds=2.0,
        now=time.time(),
    )
    samples = samples_of(collector.collect())
    assert value(samples, "celery_worker_up", hostname=hostname) == 1
    assert value(samples, "celery_worker_tasks_active", hostname=hostname) == 2
    age = value(samples, "gristmill_worker_last_heartbeat_age_seconds", hostname=hostname)
    assert age is not None
    assert 0 <= age < 2
    assert (value(samples, "celery_active_worker_count", queue_name="high") or 0) >= 1
    assert (value(samples, "celery_active_process_count", queue_name="high") or 0) >= 4


def test_stale_worker_reads_down_until_its_record_expires(
    redis_client: redis.Redis, collector: ClusterCollector
) -> None:
    hostname = f"low@obs-{uuid.uuid4().hex[:6]}"
    write_worker_record(
        redis_client,
        hostname=hostname,
        queues=["low"],
        active=0,
        concurrency=1,
        interval_seconds=0.1,
        now=time.time(),
        ttl_seconds=2,
    )
    # Three missed 0.1 s heartbeats later (on Redis's clock) the worker reads down, and stays
    # listed as down until the record's TTL runs out.
    wait_until(
        lambda: value(samples_of(collector.collect()), "celery_worker_up", hostname=hostname) == 0,
        timeout=5,
        what="the silent worker to read down",
    )
    wait_until(
        lambda: not redis_client.exists(worker_key(hostname)), timeout=10, what="record expiry"
    )
    samples = samples_of(collector.collect())
    assert value(samples, "celery_worker_up", hostname=hostname) is None
    # The expired worker was dropped from the index too.
    assert not redis_client.sismember(WORKER_INDEX_KEY, hostname)


def test_redis_down_still_serves_database_metrics(clean_db: Database) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    cluster = ClusterCollector(lambda: clean_db, closed, timeout_seconds=2)
    try:
        samples = samples_of(cluster.collect())
    finally:
        cluster.close()
    assert value(samples, "gristmill_metrics_collector_up", source="redis") == 0
    assert value(samples, "gristmill_metrics_collector_up", source="database") == 1
    assert series(samples, "celery_queue_length") == []
    assert value(samples, "gristmill_dead_letters") == 0


def test_database_down_still_serves_redis_metrics(test_settings: Settings) -> None:
    def no_database() -> Database:
        raise RuntimeError("the database is not initialised")

    cluster = ClusterCollector(no_database, test_settings.broker_url)
    try:
        samples = samples_of(cluster.collect())
    finally:
        cluster.close()
    assert value(samples, "gristmill_metrics_collector_up", source="database") == 0
    assert value(samples, "gristmill_metrics_collector_up", source="redis") == 1
    assert value(samples, "celery_queue_length", queue_name="high") is not None
    assert series(samples, "gristmill_jobs") == []


def test_hung_database_costs_one_deadline_and_one_read(
    test_settings: Settings, database: Database
) -> None:
    release = threading.Event()
    calls: list[float] = []

    def hung_database() -> Database:
        calls.append(time.monotonic())
        release.wait(30)
        return database

    cluster = ClusterCollector(hung_database, test_settings.broker_url, timeout_seconds=0.3)
    try:
        for _ in range(3):
            started = time.monotonic()
            samples = samples_of(cluster.collect())
            assert time.monotonic() - started < 2
            assert value(samples, "gristmill_metrics_collector_up", source="database") == 0
        # Scrapes while a read hangs wait on that read instead of piling up new ones.
        assert len(calls) == 1
        release.set()
        wait_until(
            lambda: (
                value(
                    samples_of(cluster.collect()),
                    "gristmill_metrics_collector_up",
                    source="database",
                )
                == 1
            ),
            timeout=10,
            what="the database read to recover",
        )
    finally:
        release.set()
        cluster.close()


def test_database_reads_are_cached_between_scrapes(
    test_settings: Settings, clean_db: Database
) -> None:
    cluster = ClusterCollector(
        lambda: clean_db, test_settings.broker_url, database_cache_seconds=60
    )
    try:
        before = samples_of(cluster.collect())
        with clean_db.transaction() as session:
            make_job(session, JobType.SCRAPE_ALL, status=JobStatus.RUNNING)
        after = samples_of(cluster.collect())
    finally:
        cluster.close()
    labels = {"status": "running", "job_type": "scrape_all"}
    assert (
        value(before, "gristmill_jobs", **labels) == value(after, "gristmill_jobs", **labels) == 0
    )


def test_registering_the_collector_reads_nothing() -> None:
    from prometheus_client import CollectorRegistry

    def no_database() -> Database:
        raise AssertionError("registration must not read the database")

    cluster = ClusterCollector(no_database, f"redis://127.0.0.1:{free_port()}/0")
    registry = CollectorRegistry(auto_describe=True)
    registry.register(cluster)
    cluster.close()
