"""The api's group commit: many starts in one transaction, each answered with its own outcome."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError

from gristmill.db import Database
from gristmill.errors import ConflictError, NotFoundError
from gristmill.jobs import outbox, starts
from gristmill.jobs.dispatch import Dispatcher, TaskMessage
from gristmill.jobs.intake import SEND_WAIT_SECONDS, JobIntake
from gristmill.settings import Settings
from tests.factories import make_account
from tests.support.stack import wait_until


@pytest.fixture
def intake(clean_db: Database) -> Iterator[JobIntake]:
    running = JobIntake(lambda: clean_db)
    yield running
    running.stop()


def test_a_batch_answers_each_start_with_its_own_outcome(
    clean_db: Database, intake: JobIntake
) -> None:
    with clean_db.transaction() as session:
        for index in range(40):
            make_account(session, f"a{index}")
        make_account(session, "sleepy", active=False)
    futures = [intake.submit(starts.scrape_account(f"a{index}")) for index in range(40)]
    twin = intake.submit(starts.scrape_account("a0"))
    unknown = intake.submit(starts.scrape_account("nobody"))
    inactive = intake.submit(starts.scrape_account("sleepy"))
    started = [future.result(timeout=30) for future in futures]
    assert all(s.created for s in started)
    assert len({s.job.job_id for s in started}) == 40
    # The same start twice: one job, answered to both.
    duplicate = twin.result(timeout=30)
    assert (duplicate.created, duplicate.job.job_id) == (False, started[0].job.job_id)
    with pytest.raises(NotFoundError):
        unknown.result(timeout=30)
    with pytest.raises(ConflictError, match="inactive"):
        inactive.result(timeout=30)


def test_a_start_the_database_refuses_does_not_fail_the_others_of_its_batch(
    clean_db: Database, intake: JobIntake
) -> None:
    with clean_db.transaction() as session:
        make_account(session, "first")
        make_account(session, "fine")
    # Hold the intake on a first start (a lock on jobs) while the next two queue up, so that
    # they are one batch.
    blocker = clean_db.sessionmaker()
    blocker.begin()
    blocker.execute(text("LOCK TABLE jobs IN EXCLUSIVE MODE"))
    first = intake.submit(starts.scrape_account("first"))
    wait_until(lambda: _waiting_on_a_lock(clean_db), timeout=10, what="the first batch to wait")
    # A NUL byte is refused by PostgreSQL itself: the whole batch's statement fails.
    bad = intake.submit(starts.scrape_account("bad\x00key"))
    good = intake.submit(starts.scrape_account("fine"))
    blocker.commit()
    blocker.close()
    assert first.result(timeout=30).created
    assert good.result(timeout=30).created
    with pytest.raises(DataError):
        bad.result(timeout=30)


def _waiting_on_a_lock(database: Database) -> bool:
    with database.engine.connect() as connection:
        waiting = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return bool(waiting)


class _SlowBroker:
    """Publishes nothing; records when each publish began and ended, taking `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[tuple[float, float, list[str]]] = []

    def publish(self, messages: Sequence[TaskMessage]) -> None:
        began = time.monotonic()
        time.sleep(self.seconds)
        self.calls.append((began, time.monotonic(), [m.task_id for m in messages]))


@pytest.mark.parametrize("publish_seconds", [0.02, 1.0])
def test_a_start_is_answered_once_its_message_is_sent_or_the_wait_runs_out(
    clean_db: Database, intake: JobIntake, test_settings: Settings, publish_seconds: float
) -> None:
    # The answer follows the send, so the send does not compete with the answer in the api
    # process; a slow broker holds an answer back SEND_WAIT_SECONDS at most.
    with clean_db.transaction() as session:
        make_account(session, "alice")
    broker = _SlowBroker(publish_seconds)
    dispatcher = Dispatcher(test_settings, lambda: clean_db, relay=False, publisher=broker.publish)
    outbox.use_submitter(dispatcher)
    try:
        job = intake.submit(starts.scrape_account("alice")).result(timeout=30).job
        answered_at = time.monotonic()
    finally:
        outbox.use_submitter(None)
        dispatcher.stop()
    (began, ended, sent), *_ = broker.calls
    assert sent == [str(job.job_id)]
    if publish_seconds < SEND_WAIT_SECONDS:
        assert answered_at >= ended
    else:
        assert began <= answered_at < began + 0.5 < ended


def test_an_over_long_account_key_is_refused_not_cut_down_to_an_existing_one(
    clean_db: Database, intake: JobIntake
) -> None:
    existing = "k" * 64  # the longest key an account can have
    with clean_db.transaction() as session:
        make_account(session, existing)
    with pytest.raises(NotFoundError):
        intake.submit(starts.scrape_account(existing + "extra")).result(timeout=30)
    with clean_db.transaction() as session:
        assert session.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0
