"""Fan-out parents: O(1) accounting per ending child, exact under concurrent endings."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, insert, update

from gristmill.db import Database
from gristmill.jobs.lifecycle import Ending, claim_jobs, finish_jobs, job_row
from gristmill.jobs.models import Job
from gristmill.jobs.parents import settle_stranded_parents
from gristmill.jobs.service import cancel_job
from gristmill.jobs.types import Attempt, JobStatus, JobType
from gristmill.settings import Settings
from tests.factories import make_job


def _parent_with_children(database: Database, count: int) -> tuple[uuid.UUID, list[Attempt]]:
    with database.transaction() as session:
        parent = make_job(session, JobType.SCRAPE_ALL, status=JobStatus.RUNNING)
        parent.children_total = count
        rows = [
            job_row(
                JobType.SCRAPE_ACCOUNT,
                params={"account_key": f"k{i:05d}"},
                account_key=f"k{i:05d}",
                parent_job_id=parent.job_id,
            )
            for i in range(count)
        ]
        session.execute(insert(Job), rows)
        claimed = {job.job_id: job for job in claim_jobs(session, [row["job_id"] for row in rows])}
        # In the children's order (k00000, k00001, ...), whatever order the claim returned.
        return parent.job_id, [
            Attempt(row["job_id"], claimed[row["job_id"]].attempts) for row in rows
        ]


def _job(database: Database, job_id: uuid.UUID) -> Job:
    with database.transaction() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def test_a_parent_completes_when_all_children_end_and_fails_only_if_none_succeeded(
    clean_db: Database,
) -> None:
    parent_id, (ok, bad) = _parent_with_children(clean_db, 2)
    with clean_db.transaction() as session:
        finish_jobs(session, [Ending(ok, JobStatus.COMPLETED, {})])
    halfway = _job(clean_db, parent_id)
    assert (halfway.status, halfway.progress) == ("running", 50)
    assert halfway.result is not None
    assert halfway.result["succeeded"] == 1
    with clean_db.transaction() as session:
        finish_jobs(session, [Ending(bad, JobStatus.FAILED, None, "HTTP 403")])
    done = _job(clean_db, parent_id)
    assert (done.status, done.progress) == ("completed", 100)
    assert done.result == {
        "accounts_total": 2,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
        "failures": [{"account_key": "k00001", "error": "HTTP 403"}],
    }

    parent_id, (only,) = _parent_with_children(clean_db, 1)
    with clean_db.transaction() as session:
        finish_jobs(session, [Ending(only, JobStatus.FAILED, None, "gone")])
    failed = _job(clean_db, parent_id)
    assert (failed.status, failed.error_message) == ("failed", "all 1 accounts failed")


def test_cancelling_one_child_counts_it_and_can_end_the_parent(clean_db: Database) -> None:
    parent_id, (first, second) = _parent_with_children(clean_db, 2)
    with clean_db.transaction() as session:
        finish_jobs(session, [Ending(first, JobStatus.COMPLETED, {})])
    with clean_db.transaction() as session:
        cancel_job(session, second.job_id)
    parent = _job(clean_db, parent_id)
    assert parent.status == "completed"
    assert parent.result is not None
    assert (parent.result["succeeded"], parent.result["cancelled"]) == (1, 1)


@contextmanager
def _statements(database: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", record)


def test_ending_a_child_costs_the_same_whatever_the_number_of_siblings(
    clean_db: Database,
) -> None:
    costs = []
    for siblings in (3, 3000):
        _, attempts = _parent_with_children(clean_db, siblings)
        with _statements(clean_db) as seen, clean_db.transaction() as session:
            finish_jobs(session, [Ending(attempts[0], JobStatus.COMPLETED, {})])
        # No statement reads the siblings: no GROUP BY, no count over the parent's children.
        assert not [s for s in seen if "count(" in s.lower() or "group by" in s.lower()]
        costs.append(len(seen))
    assert costs[0] == costs[1]


def _end_children(database_url: str, attempts: list[tuple[str, int]], status: str) -> None:
    from pydantic import SecretStr

    database = Database(Settings(database_url=SecretStr(database_url)))
    for job_id, attempt in attempts:
        # One transaction per child, as children ending one by one (retries, orphans) do.
        with database.transaction() as session:
            finish_jobs(session, [Ending(Attempt(uuid.UUID(job_id), attempt), JobStatus(status))])
    database.dispose()


def test_many_children_ending_at_once_in_several_processes_are_counted_exactly(
    clean_db: Database, test_settings: Settings
) -> None:
    parent_id, attempts = _parent_with_children(clean_db, 400)
    url = test_settings.database_url.get_secret_value()
    plain = [(str(a.job_id), a.attempt) for a in attempts]
    shares = [
        (plain[0:100], "completed"),
        (plain[100:200], "completed"),
        (plain[200:300], "failed"),
        (plain[300:400], "completed"),
    ]
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_end_children, args=(url, share, status)) for share, status in shares
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    parent = _job(clean_db, parent_id)
    assert parent.status == "completed"
    assert (parent.children_succeeded, parent.children_failed) == (300, 100)
    assert parent.result is not None
    assert (parent.result["succeeded"], parent.result["failed"]) == (300, 100)
    assert len(parent.result["failures"]) == 100


def test_a_parent_whose_counters_were_lost_is_recounted_once_its_children_ended(
    clean_db: Database,
) -> None:
    parent_id, attempts = _parent_with_children(clean_db, 3)
    with clean_db.transaction() as session:
        # Children ended behind the lifecycle's back (a manual fix in the database).
        session.execute(
            update(Job)
            .where(Job.parent_job_id == parent_id)
            .values(status=JobStatus.COMPLETED.value)
        )
    with clean_db.transaction() as session:
        assert settle_stranded_parents(session) == [parent_id]
    parent = _job(clean_db, parent_id)
    assert parent.status == "completed"
    assert parent.children_succeeded == 3
