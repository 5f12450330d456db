"""A stack of real processes on PostgreSQL and Redis of its own, which a test may break.

Fault tests (tests/worker/test_delivery_faults.py, tests/chaos) stop, wipe and restart these
instances and SIGKILL the processes; the shared services stay untouched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import redis
from sqlalchemy import func, select, text

from gristmill.accounts.models import Account
from gristmill.celery_app import redis_list_names
from gristmill.db import Database
from gristmill.jobs.models import Job
from gristmill.migrations.runner import create_database, upgrade
from gristmill.models import metadata
from gristmill.settings import Settings
from tests.fakeplatform import FAKE_PLATFORM_LIMITS, FakePlatform
from tests.support.private_services import (
    PrivatePostgres,
    PrivateRedis,
    private_postgres,
    private_redis,
)
from tests.support.services import settings_from_env
from tests.support.stack import Stack, free_port

WORKER_POOLS = ("worker_high", "worker_default", "worker_low")


class FaultyStack:
    def __init__(
        self,
        stack: Stack,
        postgres: PrivatePostgres,
        broker: PrivateRedis,
        settings: Settings,
        token: str,
    ) -> None:
        self.stack = stack
        self.postgres = postgres
        self.broker = broker
        self.settings = settings
        self.token = token
        self.database = Database(settings)
        # Processes that exited by themselves and were started again (see `revive`).
        self.revived = 0

    def client(self, timeout: float = 10) -> httpx.Client:
        return httpx.Client(
            base_url=self.stack.api_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.broker.url)

    def add_accounts(self, fake: FakePlatform, count: int, prefix: str) -> list[str]:
        keys = [f"{prefix}{index}" for index in range(count)]
        for key in keys:
            fake.add_mastodon_account(key, followers=7, following=1, statuses=1)
        self.insert_accounts(fake, keys)
        return keys

    def insert_accounts(self, fake: FakePlatform, keys: list[str]) -> None:
        """Account rows for Mastodon accounts already declared on `fake` (one statement)."""
        with self.database.transaction() as session:
            session.execute(
                Account.__table__.insert(),
                [
                    {
                        "key": key,
                        "platform": "mastodon",
                        "handle": f"{key}@fake.social",
                        "base_url": fake.url,
                        "active": True,
                    }
                    for key in keys
                ],
            )

    def statuses(self) -> dict[str, int]:
        with self.database.transaction() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        return {status: int(count) for status, count in rows}

    def queued(self, queue: str) -> int:
        client = self.redis()
        try:
            return sum(int(client.llen(name)) for name in redis_list_names(queue))
        finally:
            client.close()

    def heal(self, pools: tuple[str, ...]) -> None:
        """Both services answering and every pool in `pools` running, as after a fault."""
        if not self.postgres.answers():
            self.postgres.start()
        if not self.broker.answers():
            self.broker.start()
        for name in pools:
            if name not in self.stack.processes:
                self.stack.start(name)

    def revive(self, names: tuple[str, ...]) -> None:
        """Start again each of `names` whose process exited by itself, as Kubernetes restarts
        a container whose main process ended (e.g. Celery's "Could not start worker
        processes" after a pool child was killed while it started)."""
        for name in names:
            process = self.stack.processes.get(name)
            if process is not None and process.poll() is not None:
                del self.stack.processes[name]
                self.stack.start(name)
                self.revived += 1

    def truncate(self) -> None:
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        with self.database.transaction() as session:
            session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@contextlib.contextmanager
def faulty_stack(
    log_dir: Path,
    token: str,
    processes: list[str],
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[FaultyStack]:
    """Private PostgreSQL and Redis, migrated, and `processes` from the Procfile on them."""
    with private_postgres() as postgres, private_redis() as broker:
        database_url = postgres.database_url("gristmill")
        create_database(database_url)
        upgrade(database_url)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": broker.url,
            "API_TOKENS": token,
            "SCRAPER_ALLOW_PRIVATE_NETWORKS": "true",
            **FAKE_PLATFORM_LIMITS,
            "SCRAPER_TIMEOUT_SECONDS": "10",
            "RETRY_BACKOFF_BASE_SECONDS": "0.5",
            "RETRY_BACKOFF_MAX_SECONDS": "2",
            "JOB_HEARTBEAT_INTERVAL_SECONDS": "1",
            "JOB_HEARTBEAT_TIMEOUT_SECONDS": "15",
            "ORPHAN_CHECK_INTERVAL_SECONDS": "2",
            "BROKER_VISIBILITY_TIMEOUT_SECONDS": "10",
            "LOG_JSON": "false",
            "PORT": str(free_port()),
            "BEAT_SCHEDULE_FILE": str(log_dir / "beat-schedule"),
            "BEAT_HEARTBEAT_FILE": str(log_dir / "beat.heartbeat"),
            "WORKER_HEARTBEAT_FILE": str(log_dir / "worker.heartbeat"),
            **(extra_env or {}),
        }
        stack = Stack(env=env, log_dir=log_dir)
        stack.start_all(processes)
        faulty = FaultyStack(stack, postgres, broker, settings_from_env(env), token)
        try:
            yield faulty
        finally:
            stack.stop_all()
            faulty.database.dispose()
