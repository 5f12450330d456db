"""`make bench`: throughput and latency figures on this machine, against real services.

1. scrape-all over N accounts with the fake platform answering after 100 ms: accounts/s.
2. listing jobs newest-first (first page, a deep cursor page, filtered) with 1M job rows.
3. with --streams: the console's push updates (bench/streams.py), 100 WebSocket clients while
   50 jobs/s change state: delivery latency p50/p99.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from bench.streams import bench_streams
from gristmill.accounts.models import Account
from gristmill.db import Database
from gristmill.migrations.runner import create_database, drop_database, upgrade
from tests.fakeplatform import FakePlatform
from tests.support.services import (
    private_database_url,
    private_redis_url,
    server_urls,
    settings_from_env,
)
from tests.support.stack import Stack, free_port, wait_until


def bench_scrape_all(stack: Stack, database: Database, fake: FakePlatform, accounts: int) -> None:
    fake.set_latency(0.1)
    for index in range(accounts):
        fake.add_mastodon_account(f"b{index}", followers=index, following=1, statuses=1)
    with database.transaction() as session:
        session.execute(
            Account.__table__.insert(),
            [
                {
                    "key": f"b{index}",
                    "platform": "mastodon",
                    "handle": f"b{index}@fake.social",
                    "base_url": fake.url,
                    "active": True,
                }
                for index in range(accounts)
            ],
        )
    headers = {"Authorization": f"Bearer {stack.api_token}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        started = time.monotonic()
        job_id = client.post("/api/jobs/scrape-all").json()["job_id"]

        def finished() -> dict[str, object] | None:
            job: dict[str, object] = client.get(f"/api/jobs/{job_id}").json()
            return job if job["status"] in ("completed", "failed") else None

        job = wait_until(finished, timeout=1800, interval=0.5, what="scrape-all")
        elapsed = time.monotonic() - started
    assert isinstance(job, dict)
    result = job["result"]
    print(
        f"scrape-all: {accounts} accounts at 100 ms platform latency in {elapsed:.1f} s "
        f"= {accounts / elapsed:.0f} accounts/s (succeeded {result['succeeded']}, "
        f"failed {result['failed']})"
    )


def bench_listing(stack: Stack, database: Database, rows: int) -> None:
    with database.transaction() as session:
        session.execute(text("TRUNCATE jobs CASCADE"))
        session.execute(
            text(
                """
                INSERT INTO jobs (job_id, job_type, status, progress, params, queue, priority,
                                  attempts, account_key, created_at)
                SELECT gen_random_uuid(),
                       (ARRAY['scrape_account','scrape_all','backfill_account'])[1 + i % 3],
                       (ARRAY['completed','failed','pending','running','cancelled'])[1 + i % 5],
                       0, '{}'::jsonb, 'high', 0, 1, 'acct' || (i % 1000),
                       now() - make_interval(secs => i)
                FROM generate_series(1, :rows) AS i
                """
            ),
            {"rows": rows},
        )
    with database.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE jobs"))
    headers = {"Authorization": f"Bearer {stack.api_token}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        cursor = None
        for _ in range(200):  # walk 200 pages deep to get a deep cursor
            page = client.get(
                "/api/jobs", params={"limit": 200} | ({"cursor": cursor} if cursor else {})
            ).json()
            cursor = page["next_cursor"]
        cases = {
            "first page (limit 50)": {"limit": 50},
            "page 201 via cursor (limit 200)": {"limit": 200, "cursor": cursor},
            "status=failed": {"status": "failed"},
            "job_type=backfill_account&status=running": {
                "job_type": "backfill_account",
                "status": "running",
            },
            "account_key=acct7": {"account_key": "acct7"},
        }
        for name, params in cases.items():
            timings = []
            for _ in range(30):
                started = time.perf_counter()
                response = client.get("/api/jobs", params=params)
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
            timings.sort()
            print(
                f"list jobs at {rows:,} rows, {name}: p50 {statistics.median(timings):.1f} ms, "
                f"p95 {timings[int(len(timings) * 0.95) - 1]:.1f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=int(os.environ.get("BENCH_ACCOUNTS", 2000)))
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", 1_000_000)))
    parser.add_argument(
        "--streams", action="store_true", help="also run the streams benchmark (bench/streams.py)"
    )
    args = parser.parse_args()
    with server_urls() as servers, private_redis_url(servers.redis_server_url) as redis_url:
        database_url = private_database_url(servers.database_server_url, "bench")
        create_database(database_url)
        upgrade(database_url)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "API_TOKENS": "bench-token",
            "SCRAPER_ALLOW_PRIVATE_NETWORKS": "true",
            "LOG_LEVEL": "WARNING",
            "PORT": str(free_port()),
            "WORKER_METRICS_PORT": "0",
        }
        fake = FakePlatform()
        fake.start()
        with tempfile.TemporaryDirectory() as logs:
            env["BEAT_SCHEDULE_FILE"] = str(Path(logs) / "beat")
            stack = Stack(env=env, log_dir=Path(logs))
            database = Database(settings_from_env(env))
            try:
                stack.start_all()
                bench_scrape_all(stack, database, fake, args.accounts)
                bench_listing(stack, database, args.rows)
                if args.streams:
                    bench_streams(stack.api_url, env)
            finally:
                stack.stop_all()
                fake.stop()
                database.dispose()
                drop_database(database_url)


if __name__ == "__main__":
    main()
