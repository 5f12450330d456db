"""Every job row checked after a scenario: terminal, not lost, completed once, exact figures.

A completion is counted where it happens, in PostgreSQL: a trigger the suite adds to its own
database records every status a job row takes, so a job that reached `completed` twice (say,
completed, taken for an orphan, run and completed again) is seen even though its row ends in
the same state. The trigger is test scaffolding, not part of the schema.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Row, text

from gristmill.db import Database
from tests.chaos.workload import DayNumbers, Workload
from tests.support.faulty import WORKER_POOLS, FaultyStack

AUDIT_SQL = """
CREATE TABLE IF NOT EXISTS chaos_job_events (
    id bigserial PRIMARY KEY,
    job_id uuid NOT NULL,
    job_type text NOT NULL,
    status text NOT NULL,
    attempts integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION chaos_record_job_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO chaos_job_events (job_id, job_type, status, attempts)
        VALUES (NEW.job_id, NEW.job_type, NEW.status, NEW.attempts);
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS chaos_job_status ON jobs;
CREATE TRIGGER chaos_job_status AFTER INSERT OR UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION chaos_record_job_status();
"""


def install_audit(database: Database) -> None:
    with database.transaction() as session:
        session.execute(text(AUDIT_SQL))


def reset(faulty: FaultyStack) -> None:
    faulty.revived = 0
    faulty.truncate()
    with faulty.database.transaction() as session:
        session.execute(text("TRUNCATE chaos_job_events"))


@dataclass
class Figures:
    scenario: str
    jobs: int
    faults: str
    lost: int
    duplicated: int
    double_counted_days: int
    wrong_snapshots: int
    failed: int
    dead_letters: int
    drain_seconds: float

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.double_counted_days
            or self.wrong_snapshots
            or self.failed
            or self.dead_letters
        )


def rows(database: Database, sql: str, **params: object) -> list[Row[Any]]:
    with database.transaction() as session:
        return list(session.execute(text(sql), params).all())


def count(database: Database, sql: str, **params: object) -> int:
    """The single number `sql` selects."""
    return int(rows(database, sql, **params)[0][0])


def unfinished(database: Database) -> int:
    return count(database, "SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')")


def running_jobs(database: Database) -> int:
    return count(database, "SELECT count(*) FROM jobs WHERE status = 'running'")


def drain(faulty: FaultyStack, timeout: float) -> float:
    """Seconds until no job is pending or running; `timeout` at most (the check then counts
    the stragglers as lost)."""
    began = time.monotonic()
    deadline = began + timeout
    while time.monotonic() < deadline:
        faulty.revive(WORKER_POOLS)
        try:
            if unfinished(faulty.database) == 0:
                break
        except Exception:  # noqa: BLE001 - PostgreSQL may still be coming back
            faulty.database.dispose()
        time.sleep(0.25)
    return time.monotonic() - began


def _daily_mismatches(database: Database, workload: Workload) -> int:
    """(account, day) pairs whose stored activity differs from what the platform served,
    including stored days the platform never served."""
    found = rows(
        database,
        "SELECT a.key, d.date, d.posts, d.likes, d.reposts, d.replies "
        "FROM daily_activity d JOIN accounts a ON a.id = d.account_id",
    )
    stored: dict[tuple[str, date], DayNumbers] = {
        (row.key, row.date): DayNumbers(row.posts, row.likes, row.reposts, row.replies)
        for row in found
    }
    expected = {
        (key, day): numbers for key, days in workload.daily.items() for day, numbers in days.items()
    }
    pairs = expected.keys() | stored.keys()
    return sum(1 for pair in pairs if stored.get(pair) != expected.get(pair))


def _wrong_snapshots(database: Database, workload: Workload) -> int:
    found = rows(
        database,
        "SELECT a.key, s.followers, count(*) OVER (PARTITION BY a.key) AS days "
        "FROM metric_snapshots s JOIN accounts a ON a.id = s.account_id",
    )
    seen = {row.key: (row.followers, row.days) for row in found}
    # Every account was scraped at least by the fan-out: one snapshot (one UTC day) each.
    return sum(1 for key in workload.keys if seen.get(key) != (workload.followers[key], 1))


def check_every_job(
    faulty: FaultyStack,
    scenario: str,
    faults: str,
    drain_seconds: float,
    workload: Workload | None = None,
    started: list[str] | None = None,
) -> Figures:
    database = faulty.database
    started_ids = list(started if started is not None else workload.job_ids if workload else [])
    with database.transaction() as session:
        statuses = dict(session.execute(text("SELECT job_id::text, status FROM jobs")).all())
        duplicated = session.execute(
            text(
                "SELECT count(*) FROM (SELECT job_id FROM chaos_job_events "
                "WHERE status = 'completed' GROUP BY job_id HAVING count(*) > 1) twice"
            )
        ).scalar_one()
        dead_letters = session.execute(text("SELECT count(*) FROM dead_letters")).scalar_one()
    lost = sum(1 for job_id in started_ids if job_id not in statuses) + sum(
        1 for status in statuses.values() if status in ("pending", "running")
    )
    return Figures(
        scenario=scenario,
        jobs=len(statuses),
        faults=faults,
        lost=lost,
        duplicated=int(duplicated),
        double_counted_days=_daily_mismatches(database, workload) if workload else 0,
        wrong_snapshots=_wrong_snapshots(database, workload) if workload else 0,
        failed=sum(1 for status in statuses.values() if status in ("failed", "cancelled")),
        dead_letters=int(dead_letters),
        drain_seconds=drain_seconds,
    )


def stragglers(database: Database) -> list[dict[str, object]]:
    """The unfinished jobs, with what a reader needs to see why (for a failure message)."""
    found = rows(
        database,
        "SELECT job_id, job_type, status, queue, attempts, retries, worker_losses, "
        "enqueued_at, run_after, heartbeat_at, parent_job_id, now() AS now "
        "FROM jobs WHERE status IN ('pending', 'running') ORDER BY created_at LIMIT 20",
    )
    return [dict(row._mapping) for row in found]
