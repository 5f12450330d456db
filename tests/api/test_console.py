"""The console's read-outs: /api/queues, /api/workers, /api/schedules, /api/overview."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient

from gristmill.celery_app import redis_list_names
from gristmill.clock import utc_now
from gristmill.console.overview import read_overview
from gristmill.console.schemas import OverviewRead
from gristmill.db import Database
from gristmill.jobs.models import ScheduleRun
from gristmill.jobs.types import JobStatus, JobType
from gristmill.observability.heartbeat import write_worker_record
from gristmill.observability.publish import SENT_AT_HEADER
from gristmill.schedules import next_cron_time, schedule_entries
from gristmill.settings import Settings
from tests.conftest import read_only_headers
from tests.factories import make_job


def _message(sent_at: float) -> str:
    return json.dumps({"body": "", "headers": {SENT_AT_HEADER: sent_at}, "properties": {}})


def test_queues_count_every_priority_list_and_age_the_oldest_message(
    api: TestClient, api_settings: Settings
) -> None:
    broker = redis.Redis.from_url(api_settings.broker_url)
    now = float(broker.time()[0])
    high = redis_list_names("high")
    # kombu LPUSHes: the tail of each list is its oldest message.
    broker.lpush(high[0], _message(now - 30), _message(now - 5))
    broker.lpush(high[4], _message(now - 90))
    broker.lpush(high[9], _message(now - 2), _message(now - 1), _message(now))
    broker.lpush(redis_list_names("low")[0], "not json at all")
    queues = {q["name"]: q for q in api.get("/api/queues").json()["queues"]}
    assert queues["high"]["depth"] == 6
    assert 89 <= queues["high"]["oldest_age_seconds"] <= 95
    assert queues["high"]["oldest_sent_at"] == pytest.approx(now - 90)
    assert queues["default"] == {
        "name": "default",
        "depth": 0,
        "oldest_age_seconds": None,
        "oldest_sent_at": None,
    }
    # A message without our publish stamp still counts; its age is unknown.
    assert queues["low"]["depth"] == 1
    assert queues["low"]["oldest_age_seconds"] is None


def test_workers_come_from_heartbeat_records_and_show_who_is_down(
    api: TestClient, api_settings: Settings
) -> None:
    broker = redis.Redis.from_url(api_settings.broker_url)
    now = time.time()
    write_worker_record(
        broker,
        hostname="high@pod-a",
        queues=["high"],
        active=2,
        concurrency=4,
        interval_seconds=2.0,
        now=now,
    )
    # A record whose TTL is mostly used up: its last heartbeat was ~590 s ago.
    write_worker_record(
        broker,
        hostname="low@pod-b",
        queues=["low"],
        active=0,
        concurrency=1,
        interval_seconds=2.0,
        now=now - 590,
        ttl_seconds=10,
    )
    broker.hset("gristmill:workers:low@pod-b", "ttl", 600)
    body = api.get("/api/workers").json()
    assert "pods" not in body or body["pods"] is None  # not in a cluster
    workers = {w["hostname"]: w for w in body["workers"]}
    assert workers["high@pod-a"]["pool"] == "high"
    assert workers["high@pod-a"]["queues"] == ["high"]
    assert workers["high@pod-a"]["active"] == 2
    assert workers["high@pod-a"]["concurrency"] == 4
    assert workers["high@pod-a"]["up"] is True
    assert workers["low@pod-b"]["up"] is False
    assert workers["low@pod-b"]["heartbeat_age_seconds"] > 500


def test_schedules_show_cron_interval_last_run_with_its_job_and_next_run(
    api: TestClient, api_settings: Settings, clean_db: Database
) -> None:
    ran_at = utc_now() - timedelta(seconds=100)
    with clean_db.transaction() as session:
        old = make_job(session, JobType.HEALTH_CHECK, status=JobStatus.COMPLETED)
        recorded = make_job(session, JobType.HEALTH_CHECK, status=JobStatus.COMPLETED)
        session.add_all(
            [
                ScheduleRun(
                    entry="health-check",
                    slot_at=ran_at - timedelta(minutes=5),
                    job_id=old.job_id,
                    fired_at=ran_at - timedelta(minutes=5),
                ),
                ScheduleRun(
                    entry="health-check", slot_at=ran_at, job_id=recorded.job_id, fired_at=ran_at
                ),
                # A run whose job was deleted since.
                ScheduleRun(
                    entry="cleanup-old-jobs",
                    slot_at=ran_at,
                    job_id=uuid.uuid4(),
                    fired_at=ran_at,
                ),
            ]
        )
    body = api.get("/api/schedules").json()["schedules"]
    by_name = {s["name"]: s for s in body}
    assert list(by_name) == [e.name for e in schedule_entries(api_settings)]

    daily = by_name["daily-scrape-all"]
    assert daily["cron"] == api_settings.daily_scrape_cron
    assert daily["interval_seconds"] is None
    assert daily["last_run_at"] is None
    next_daily = datetime.fromisoformat(daily["next_run_at"])
    assert next_daily > utc_now()
    assert next_daily == next_cron_time(api_settings.daily_scrape_cron, utc_now())

    health = by_name["health-check"]
    assert health["interval_seconds"] == api_settings.health_check_interval_seconds
    assert health["last_job_id"] == str(recorded.job_id)
    assert health["last_job_status"] == "completed"
    last = datetime.fromisoformat(health["last_run_at"])
    assert abs((last - ran_at).total_seconds()) < 0.01
    expected_next = ran_at + timedelta(seconds=api_settings.health_check_interval_seconds)
    assert abs((datetime.fromisoformat(health["next_run_at"]) - expected_next).total_seconds()) < 1

    cleanup = by_name["cleanup-old-jobs"]
    assert cleanup["last_job_status"] is None
    assert cleanup["last_run_at"] is not None
    assert cleanup["cron"] == api_settings.cleanup_cron
    assert datetime.fromisoformat(cleanup["next_run_at"]) == next_cron_time(
        api_settings.cleanup_cron, utc_now()
    )


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 2 * * *", "2026-03-10T01:59:30", "2026-03-10T02:00:00"),
        ("0 2 * * *", "2026-03-10T02:00:00", "2026-03-11T02:00:00"),
        ("*/15 * * * *", "2026-03-10T10:14:59", "2026-03-10T10:15:00"),
        ("0 3 * * 0", "2026-03-10T12:00:00", "2026-03-15T03:00:00"),  # next Sunday
        ("30 3 1 * *", "2026-12-05T00:00:00", "2027-01-01T03:30:00"),
        ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
        ("30 6 * * 1-5", "2026-03-13T07:00:00", "2026-03-16T06:30:00"),  # Friday -> Monday
    ],
)
def test_next_cron_time(expression: str, after: str, expected: str) -> None:
    moment = datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert next_cron_time(expression, moment) == datetime.fromisoformat(expected).replace(
        tzinfo=UTC
    )


def test_overview_counts_jobs_by_status_per_hour_and_unsent_jobs(clean_db: Database) -> None:
    # Read through the core: an app's outbox relay would send the unsent jobs while we look.
    now = utc_now()
    with clean_db.transaction() as session:
        for _ in range(3):
            make_job(session, status=JobStatus.COMPLETED, created_at=now - timedelta(hours=2))
        make_job(session, status=JobStatus.FAILED, created_at=now - timedelta(hours=2))
        make_job(session, status=JobStatus.PENDING, created_at=now - timedelta(minutes=10))
        make_job(session, status=JobStatus.COMPLETED, created_at=now - timedelta(hours=30))
        overview = OverviewRead.model_validate(read_overview(session, now=now))
    assert overview.totals == {
        "pending": 1,
        "running": 0,
        "completed": 3,
        "failed": 1,
        "cancelled": 0,
    }
    assert len(overview.hours) == 24
    two_hours_ago = (now - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    bucket = next(h for h in overview.hours if h.hour == two_hours_ago)
    assert bucket.counts["completed"] == 3
    assert bucket.counts["failed"] == 1
    assert overview.unsent_jobs == 1  # the pending job has no message in the broker
    assert overview.oldest_unsent_at is not None
    assert overview.dead_letters == 0


def test_overview_route(api: TestClient, clean_db: Database) -> None:
    with clean_db.transaction() as session:
        make_job(session, status=JobStatus.COMPLETED)
    body = api.get("/api/overview").json()
    assert body["totals"]["completed"] == 1
    assert set(body) >= {"since", "hours", "unsent_jobs", "oldest_unsent_at", "dead_letters"}


def test_console_routes_need_a_token_and_are_in_openapi(api: TestClient) -> None:
    for path in ("/api/queues", "/api/workers", "/api/schedules", "/api/overview"):
        assert api.get(path, headers={"Authorization": ""}).status_code == 401
        assert api.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert api.get(path, headers=read_only_headers()).status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/api/queues", "/api/workers", "/api/schedules", "/api/overview", "/api/events"):
        assert "get" in paths[path], path
    workers = api.get("/openapi.json").json()["components"]["schemas"]["WorkersRead"]
    assert "pods" in workers["properties"]
