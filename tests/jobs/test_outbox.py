"""The outbox and its relay against the real database and a Redis no worker listens on."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from pydantic import SecretStr
from sqlalchemy import select, update

from gristmill.celery_app import configure_celery, redis_list_names
from gristmill.clock import utc_now
from gristmill.db import Database
from gristmill.jobs import outbox
from gristmill.jobs.dispatch import BROKER_EPOCH_KEY, Dispatcher, task_messages
from gristmill.jobs.lifecycle import insert_jobs, job_row
from gristmill.jobs.models import Job
from gristmill.jobs.types import JobType
from gristmill.settings import Settings


@pytest.fixture
def relay_settings(test_settings: Settings, idle_broker_url: str) -> Iterator[Settings]:
    settings = test_settings.model_copy(update={"celery_broker_url": SecretStr(idle_broker_url)})
    configure_celery(settings)
    broker = redis.Redis.from_url(idle_broker_url)
    broker.flushdb()
    yield settings
    broker.flushdb()
    configure_celery(test_settings)


def _queued(settings: Settings) -> list[dict[str, Any]]:
    broker = redis.Redis.from_url(settings.broker_url)
    messages = []
    for queue in ("high", "default", "low"):
        for name in redis_list_names(queue):
            messages += [json.loads(raw) for raw in broker.lrange(name, 0, -1)]
    return messages


def _create(database: Database, count: int, job_type: JobType = JobType.HEALTH_CHECK) -> list[Job]:
    with database.transaction() as session:
        jobs = insert_jobs(session, [job_row(job_type) for _ in range(count)])
        # Old enough for the relay: younger jobs are left to their creator's fast path.
        session.execute(update(Job).values(created_at=utc_now() - timedelta(seconds=10)))
        return jobs


def test_the_relay_sends_unsent_jobs_once_and_marks_them(
    clean_db: Database, relay_settings: Settings
) -> None:
    jobs = _create(clean_db, 3)
    dispatcher = Dispatcher(relay_settings, lambda: clean_db, relay=True)
    assert dispatcher.relay_once() == 3
    sent = sorted(message["headers"]["id"] for message in _queued(relay_settings))
    assert sent == sorted(str(job.job_id) for job in jobs)
    with clean_db.transaction() as session:
        marked = session.scalars(select(Job.enqueued_at)).all()
    assert len(marked) == 3
    assert all(marked)
    assert dispatcher.relay_once() == 0
    assert len(_queued(relay_settings)) == 3


def test_when_the_broker_loses_its_data_every_pending_job_is_sent_again(
    clean_db: Database, relay_settings: Settings
) -> None:
    _create(clean_db, 4)
    dispatcher = Dispatcher(relay_settings, lambda: clean_db, relay=True)
    assert dispatcher.relay_once() == 4
    broker = redis.Redis.from_url(relay_settings.broker_url)
    broker.flushdb()  # the messages and the epoch key vanish together
    assert dispatcher.relay_once() == 4
    assert len(_queued(relay_settings)) == 4
    assert broker.get(BROKER_EPOCH_KEY) is not None
    assert dispatcher.relay_once() == 0


def test_a_mark_under_an_old_epoch_leaves_the_job_unsent(clean_db: Database) -> None:
    (job,) = _create(clean_db, 1)
    with clean_db.transaction() as session:
        outbox.adopt_broker_epoch(session, "first")
    with clean_db.transaction() as session:
        outbox.adopt_broker_epoch(session, "second")  # the broker lost its data meanwhile
    with clean_db.transaction() as session:
        assert outbox.mark_enqueued(session.connection(), [job.job_id], "first") == 0
        assert outbox.mark_enqueued(session.connection(), [job.job_id], "second") == 1


def test_a_job_waiting_out_its_backoff_is_not_relayed_early(
    clean_db: Database, relay_settings: Settings
) -> None:
    (job,) = _create(clean_db, 1)
    with clean_db.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.job_id == job.job_id)
            .values(run_after=utc_now() + timedelta(minutes=1))
        )
    dispatcher = Dispatcher(relay_settings, lambda: clean_db, relay=True)
    assert dispatcher.relay_once() == 0
    with clean_db.transaction() as session:
        assert outbox.unsent_summary(session).count == 0
        session.execute(update(Job).values(run_after=utc_now() - timedelta(seconds=1)))
    with clean_db.transaction() as session:
        summary = outbox.unsent_summary(session)
    assert summary.count == 1
    assert summary.oldest_since is not None
    assert dispatcher.relay_once() == 1


def test_fan_out_children_travel_many_to_a_message(clean_db: Database) -> None:
    with clean_db.transaction() as session:
        parent = insert_jobs(session, [job_row(JobType.SCRAPE_ALL)])[0]
        rows = [
            job_row(
                JobType.SCRAPE_ACCOUNT,
                params={"account_key": f"a{i}"},
                account_key=f"a{i}",
                parent_job_id=parent.job_id,
            )
            for i in range(5)
        ]
        children = insert_jobs(session, rows)
        jobs = [outbox.OutboxJob.of(job) for job in [parent, *children]]
    messages = task_messages(jobs, batch_size=2)
    assert [m.task_name for m in messages] == [
        "gristmill.scrape_all_accounts",
        "gristmill.scrape_account_batch",
        "gristmill.scrape_account_batch",
        "gristmill.scrape_account_batch",
    ]
    assert messages[0].task_id == str(parent.job_id)
    batched = [job_id for m in messages[1:] for job_id in m.kwargs["job_ids"]]
    assert batched == [str(child.job_id) for child in children]
    assert {m.queue for m in messages[1:]} == {"default"}


def test_splitting_a_big_fan_out_into_messages_takes_linear_time() -> None:
    # A scrape-all over 50,000 accounts is sent from one list; comparing every child with
    # every other (as a membership test on a list once did) would take minutes here.
    parent_id = uuid.uuid4()
    children = [
        outbox.OutboxJob(
            uuid.uuid4(), "scrape_account", {"account_key": f"a{i}"}, "default", 5, parent_id
        )
        for i in range(50_000)
    ]
    started = time.monotonic()
    messages = task_messages(children, batch_size=200)
    assert time.monotonic() - started < 5
    assert len(messages) == 250
    assert sum(len(m.kwargs["job_ids"]) for m in messages) == 50_000
