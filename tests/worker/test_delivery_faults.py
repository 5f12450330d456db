"""A committed job always reaches a worker: faults between commit and run, with real processes.

These tests break PostgreSQL and Redis, so the stack here runs against private instances.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from gristmill.celery_app import celery_app, configure_celery, redis_list_names
from gristmill.db import Database, use_database
from gristmill.jobs.dispatch import TaskMessage, publish
from gristmill.jobs.models import Job
from gristmill.settings import Settings
from tests.conftest import WRITE_TOKEN
from tests.fakeplatform import FakePlatform
from tests.support.faulty import FaultyStack, faulty_stack
from tests.support.jobs import wait_for_job
from tests.support.stack import REPO_ROOT, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyStack]:
    log_dir = tmp_path_factory.mktemp("faulty")
    with faulty_stack(log_dir, WRITE_TOKEN, ["api", "worker_high", "worker_default"]) as faulty:
        yield faulty


@pytest.fixture
def fresh(
    faulty: FaultyStack, fake_platform: FakePlatform, test_settings: Settings, database: Database
) -> Iterator[FaultyStack]:
    faulty.heal(("worker_high", "worker_default"))
    faulty.truncate()
    # This process sends messages itself in some tests: to the private broker.
    configure_celery(faulty.settings)
    use_database(faulty.database)
    yield faulty
    configure_celery(test_settings)
    use_database(database)


def _start_scrapes(client: httpx.Client, keys: list[str]) -> list[str]:
    ids = []
    for key in keys:
        response = client.post(f"/api/jobs/scrape-account/{key}")
        assert response.status_code == 202, response.text
        ids.append(response.json()["job_id"])
    return ids


def _all_completed(faulty: FaultyStack, count: int, *, timeout: float) -> None:
    wait_until(
        lambda: faulty.statuses().get("completed", 0) == count,
        timeout=timeout,
        interval=0.5,
        what=f"{count} completed jobs (now {faulty.statuses()})",
    )


def test_jobs_waiting_in_a_redis_that_loses_its_data_all_run(
    fresh: FaultyStack, fake_platform: FakePlatform
) -> None:
    fresh.stack.kill("worker_high", signal.SIGTERM)
    keys = fresh.add_accounts(fake_platform, 200, "wiped")
    with fresh.client() as client:
        _start_scrapes(client, keys)
    wait_until(lambda: fresh.queued("high") == 200, timeout=30, what="200 queued messages")
    fresh.redis().flushall()  # the private broker loses everything, epoch key included
    wiped_at = time.monotonic()
    fresh.stack.start("worker_high")
    _all_completed(fresh, 200, timeout=60)
    assert time.monotonic() - wiped_at < 60
    assert fake_platform.request_count() >= 200


def test_a_job_committed_by_a_process_killed_before_it_sent_runs(
    fresh: FaultyStack, fake_platform: FakePlatform
) -> None:
    (key,) = fresh.add_accounts(fake_platform, 1, "orphaned")
    script = (
        "import os, signal\n"
        "from gristmill.db import call_after_commit, init_database\n"
        "from gristmill.events import init_event_publisher\n"
        "from gristmill.celery_app import configure_celery\n"
        "from gristmill.jobs.dispatch import start_dispatcher\n"
        "from gristmill.jobs.starts import scrape_account, start_one\n"
        "from gristmill.settings import get_settings\n"
        "settings = get_settings()\n"
        "configure_celery(settings)\n"
        "database = init_database(settings)\n"
        "start_dispatcher(settings, lambda: database, relay=False)\n"
        "with database.transaction() as session:\n"
        "    call_after_commit(session, lambda: os.kill(os.getpid(), signal.SIGKILL))\n"
        f"    print(start_one(session, scrape_account({key!r})).job.job_id, flush=True)\n"
    )
    died = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=fresh.stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert died.returncode == -signal.SIGKILL, died.stderr
    job_id = died.stdout.strip()
    with fresh.client() as client:
        job = client.get(f"/api/jobs/{job_id}").json()
        assert (job["status"], job["enqueued_at"]) == ("pending", None)  # committed, unsent
        job = wait_for_job(client, job_id, timeout=30)
    assert job["status"] == "completed", job


def test_postgres_down_while_messages_are_delivered_leaves_no_job_stuck(
    fresh: FaultyStack, fake_platform: FakePlatform
) -> None:
    fresh.stack.kill("worker_high", signal.SIGTERM)
    keys = fresh.add_accounts(fake_platform, 80, "pgdown")
    with fresh.client() as client:
        _start_scrapes(client, keys)
        wait_until(lambda: fresh.queued("high") == 80, timeout=30, what="80 queued messages")
        fresh.database.dispose()
        fresh.postgres.stop()
        # Workers take messages they cannot claim while the database is down.
        fresh.stack.start("worker_high")
        wait_until(lambda: fresh.queued("high") < 80, timeout=30, what="deliveries to start")
        down = client.get("/api/jobs")
        assert down.status_code == 503
        assert down.headers["Retry-After"]
        assert "PostgreSQL" in down.json()["detail"]
        time.sleep(15)  # the outage lasts; nothing to poll for while it does
        fresh.postgres.start()
    _all_completed(fresh, 80, timeout=90)


def test_messages_held_by_a_sigkilled_worker_run_within_about_a_minute(
    fresh: FaultyStack, fake_platform: FakePlatform
) -> None:
    fresh.stack.kill("worker_high", signal.SIGTERM)
    keys = fresh.add_accounts(fake_platform, 6, "held")
    with fresh.client() as client:
        ids = _start_scrapes(client, keys)
    wait_until(lambda: fresh.queued("high") == 6, timeout=30, what="6 queued messages")
    # Replace them with messages due in 20 s: a worker takes such messages at once and holds
    # them, unacknowledged, until they are due (as it holds prefetched ones).
    fresh.redis().delete(*redis_list_names("high"))
    with fresh.database.transaction() as session:
        jobs = session.scalars(select(Job).where(Job.job_id.in_(ids))).all()
        messages = [
            TaskMessage("gristmill.scrape_account", dict(job.params), str(job.job_id), "high", 0)
            for job in jobs
        ]
    with celery_app.producer_or_acquire() as producer:
        for message in messages:
            celery_app.send_task(
                message.task_name,
                kwargs=message.kwargs,
                task_id=message.task_id,
                queue="high",
                countdown=20,
                producer=producer,
                ignore_result=True,
            )
    fresh.stack.start("worker_high")
    wait_until(lambda: fresh.queued("high") == 0, timeout=30, what="the worker to take all 6")
    wait_until(lambda: fresh.redis().hlen("unacked") >= 6, timeout=10, what="6 held messages")
    fresh.stack.kill("worker_high", signal.SIGKILL)
    killed_at = time.monotonic()
    assert fresh.statuses() == {"pending": 6}
    fresh.stack.start("worker_high")
    _all_completed(fresh, 6, timeout=75)
    assert time.monotonic() - killed_at < 75
    assert fake_platform.request_count() == 6


def test_with_redis_down_starts_answer_202_and_run_once_it_is_back(
    fresh: FaultyStack, fake_platform: FakePlatform
) -> None:
    (key,) = fresh.add_accounts(fake_platform, 1, "brokerless")
    fresh.broker.stop()
    with fresh.client() as client:
        began = time.monotonic()
        response = client.post(f"/api/jobs/scrape-account/{key}")
        assert response.status_code == 202, response.text
        assert time.monotonic() - began < 2  # the request never waits for the broker
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["broker"] == "unreachable"
        job_id = response.json()["job_id"]
        fresh.broker.start()  # empty: a restart without data
        job = wait_for_job(client, job_id, timeout=60)
    assert job["status"] == "completed", job


def test_duplicate_deliveries_run_a_job_once(
    fresh: FaultyStack, fake_platform: FakePlatform
) -> None:
    fresh.stack.kill("worker_high", signal.SIGTERM)
    (key,) = fresh.add_accounts(fake_platform, 1, "twice")
    with fresh.client() as client:
        (job_id,) = _start_scrapes(client, [key])
        message = TaskMessage("gristmill.scrape_account", {"account_key": key}, job_id, "high", 0)
        publish([message, message, message])
        wait_until(lambda: fresh.queued("high") == 4, timeout=10, what="4 copies queued")
        fresh.stack.start("worker_high")
        job = wait_for_job(client, job_id, timeout=30)
        wait_until(lambda: fresh.queued("high") == 0, timeout=30, what="every copy consumed")
    assert job["status"] == "completed"
    assert job["attempts"] == 1
    assert fake_platform.request_count(key) == 1


def test_pool_processes_past_their_memory_limit_are_replaced_and_every_job_runs(
    fresh: FaultyStack, fake_platform: FakePlatform
) -> None:
    fresh.stack.kill("worker_high", signal.SIGTERM)
    # 1 MiB: every pool process is past it after its first task, and is replaced.
    fresh.stack.start("worker_high", {"WORKER_MAX_MEMORY_PER_CHILD_MB": "1"})
    try:
        wait_until(lambda: len(fresh.stack.children("worker_high")) == 2, timeout=30, what="a pool")
        first_pool = set(fresh.stack.children("worker_high"))
        keys = fresh.add_accounts(fake_platform, 12, "grown")
        with fresh.client() as client:
            _start_scrapes(client, keys)
        _all_completed(fresh, 12, timeout=90)
        assert not first_pool & set(fresh.stack.children("worker_high"))
        assert fake_platform.request_count() == 12
    finally:
        # The next test's `fresh` starts the pool again with the default limit.
        fresh.stack.kill("worker_high", signal.SIGTERM)
