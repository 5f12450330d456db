"""Work at scale: scrape-all at 100 ms platform latency, listing and cleanup at 1M job rows."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass

from sqlalchemy import func, select, text

from bench.environment import BenchEnv
from gristmill.jobs.dispatch import BrokerEpoch
from gristmill.jobs.models import Job
from gristmill.jobs.outbox import adopt_broker_epoch
from gristmill.jobs.starts import create_job
from gristmill.jobs.types import JobType
from tests.support.stack import wait_until


@dataclass(frozen=True)
class ScrapeAllResult:
    accounts: int
    seconds: float
    succeeded: int

    @property
    def per_second(self) -> float:
        return self.accounts / self.seconds


def bench_scrape_all(env: BenchEnv, accounts: int) -> ScrapeAllResult:
    env.reset()
    env.add_accounts([f"bulk{index}" for index in range(accounts)])
    env.fake.set_latency(0.1)
    env.stack.start_all(["api", "worker_high", "worker_default", "worker_low"])
    try:
        with env.client() as client:
            started = time.monotonic()
            job_id = client.post("/api/jobs/scrape-all").json()["job_id"]

            def finished() -> dict[str, object] | None:
                job: dict[str, object] = client.get(f"/api/jobs/{job_id}").json()
                return job if job["status"] in ("completed", "failed") else None

            job = wait_until(finished, timeout=1800, interval=0.2, what="scrape-all")
            elapsed = time.monotonic() - started
    finally:
        for name in ("worker_high", "worker_default", "worker_low", "api"):
            env.stack.kill(name)
        env.fake.set_latency(0)
    assert isinstance(job, dict)
    result = job["result"]
    assert isinstance(result, dict)
    return ScrapeAllResult(accounts, elapsed, int(result["succeeded"]))


def _fill_jobs(env: BenchEnv, rows: int, *, finished_days_ago: int | None) -> None:
    """`rows` jobs; all finished `finished_days_ago` days ago, or a mix of every status."""
    # The broker and the table agree on the broker's epoch, or the api's relay would take the
    # pending rows below for jobs the broker lost and send them all at start-up.
    epoch = BrokerEpoch(env.settings.broker_url).ensure()
    with env.database.transaction() as session:
        session.execute(text("TRUNCATE jobs CASCADE"))
        adopt_broker_epoch(session, epoch)
        session.execute(
            text(
                """
                INSERT INTO jobs (job_id, job_type, status, progress, params, queue, priority,
                                  attempts, account_key, created_at, completed_at, enqueued_at)
                SELECT gen_random_uuid(),
                       (ARRAY['scrape_account','scrape_all','backfill_account'])[1 + i % 3],
                       CASE WHEN CAST(:days AS int) IS NULL
                            THEN (ARRAY['completed','failed','pending','running',
                                        'cancelled'])[1 + i % 5]
                            ELSE (ARRAY['completed','failed','cancelled'])[1 + i % 3] END,
                       0, '{}'::jsonb, 'high', 0, 1, 'acct' || (i % 1000),
                       now() - make_interval(days => coalesce(CAST(:days AS int), 0),
                                             secs => i),
                       CASE WHEN CAST(:days AS int) IS NULL THEN NULL
                            ELSE now() - make_interval(days => CAST(:days AS int), secs => i) END,
                       -- Sent long ago, under the epoch above.
                       now() - make_interval(secs => i)
                FROM generate_series(1, :rows) AS i
                """
            ),
            {"rows": rows, "days": finished_days_ago},
        )
    env.vacuum()


def _timings(run: object, count: int) -> list[float]:
    assert callable(run)
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        run()
        timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)


def p99(timings: list[float]) -> float:
    return timings[min(len(timings) - 1, int(len(timings) * 0.99))]


def bench_listing(env: BenchEnv, rows: int, samples: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of `GET /api/jobs` cases at `rows` job rows."""
    _fill_jobs(env, rows, finished_days_ago=None)
    env.stack.start("api")
    env.stack.wait_for_api()
    results: dict[str, tuple[float, float]] = {}
    try:
        with env.client() as client:
            cursor = ""
            for _ in range(200):  # walk 200 pages deep to get a deep cursor
                params = {"limit": 200} | ({"cursor": cursor} if cursor else {})
                next_cursor = client.get("/api/jobs", params=params).json()["next_cursor"]
                if not isinstance(next_cursor, str):
                    raise AssertionError("the listing ended before page 201")
                cursor = next_cursor
            cases: dict[str, dict[str, str | int]] = {
                "first page (limit 50)": {"limit": 50},
                "page 201 via cursor (limit 200)": {"limit": 200, "cursor": cursor},
                "status=failed": {"status": "failed"},
                "job_type+status": {"job_type": "backfill_account", "status": "running"},
                "account_key=acct7": {"account_key": "acct7"},
            }
            for name, params in cases.items():

                def one(params: dict[str, str | int] = params) -> None:
                    client.get("/api/jobs", params=params).raise_for_status()

                one()
                timings = _timings(one, samples)
                results[name] = (statistics.median(timings), p99(timings))
    finally:
        env.stack.kill("api")
    return results


@dataclass(frozen=True)
class CleanupResult:
    deleted: int
    seconds: float
    longest_transaction_seconds: float


def bench_cleanup(env: BenchEnv, rows: int) -> CleanupResult:
    """Delete `rows` finished jobs older than the retention through the real cleanup job,
    watching every open transaction of the database meanwhile."""
    _fill_jobs(env, rows, finished_days_ago=env.settings.job_retention_days + 1)
    longest = 0.0
    stop = threading.Event()

    def watch() -> None:
        nonlocal longest
        with env.database.engine.connect() as connection:
            while not stop.is_set():
                age = connection.execute(
                    text(
                        "SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0) "
                        "FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                    )
                ).scalar_one()
                connection.rollback()
                longest = max(longest, float(age))
                time.sleep(0.02)

    env.stack.start("worker_low")
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with env.database.transaction() as session:
            job_id = create_job(session, JobType.CLEANUP_OLD_JOBS).job.job_id
        env.stack.start("api")  # its outbox relay sends the job (no fast path here)

        def done() -> Job | None:
            with env.database.transaction() as session:
                job = session.get(Job, job_id)
                return (
                    job
                    if job is not None and job.status != "pending" and (job.status != "running")
                    else None
                )

        job = wait_until(done, timeout=600, interval=0.5, what="the cleanup job")
    finally:
        stop.set()
        watcher.join(5)
        env.stack.kill("worker_low")
        env.stack.kill("api")
    assert isinstance(job, Job)
    assert job.status == "completed", job.error_message
    assert job.started_at is not None
    assert job.completed_at is not None
    with env.database.transaction() as session:
        left = session.scalar(select(func.count()).select_from(Job))
    assert left == 1, f"{left} jobs left"  # the cleanup job itself
    return CleanupResult(
        int((job.result or {})["deleted"]),
        (job.completed_at - job.started_at).total_seconds(),
        longest,
    )
