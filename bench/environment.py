"""The benchmark's world: a private database and Redis databases, the fake platform, processes.

Gristmill and its plain peers run against the same PostgreSQL server and Redis server in the
same run, each on a database (and Redis db number) of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from sqlalchemy import text

from gristmill.celery_app import configure_celery
from gristmill.db import Database, use_database
from gristmill.migrations.runner import create_database, drop_database, upgrade
from gristmill.settings import Settings
from tests.fakeplatform import FAKE_PLATFORM_LIMITS, FakePlatform
from tests.support.services import (
    private_database_url,
    private_redis_url,
    server_urls,
    settings_from_env,
)
from tests.support.stack import REPO_ROOT, Stack, free_port, wait_until

TOKEN = "bench-token"


@dataclass
class BenchEnv:
    env: dict[str, str]
    settings: Settings
    database: Database
    stack: Stack
    fake: FakePlatform
    peer_broker_url: str
    log_dir: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.api_url, headers=self.headers, timeout=60)

    def reset(self) -> None:
        """Empty the jobs and accounts tables and both brokers between sections: each section
        adds the accounts it works on (a scrape-all must cover only its own)."""
        with self.database.transaction() as session:
            session.execute(
                text(
                    "TRUNCATE jobs, dead_letters, schedule_runs, accounts RESTART IDENTITY CASCADE"
                )
            )
        for url in (self.settings.broker_url, self.peer_broker_url):
            redis.Redis.from_url(url).flushdb()
        self.fake.reset()

    def add_accounts(self, keys: list[str], *, fake: bool = True) -> None:
        if fake:
            for key in keys:
                self.fake.add_mastodon_account(key, followers=1, following=1, statuses=1)
        with self.database.transaction() as session:
            session.execute(
                text(
                    "INSERT INTO accounts (key, platform, handle, base_url, active) "
                    "SELECT k, 'mastodon', k || '@fake.social', :url, true "
                    "FROM unnest(CAST(:keys AS text[])) AS k ON CONFLICT (key) DO NOTHING"
                ),
                {"keys": keys, "url": self.fake.url},
            )

    def vacuum(self) -> None:
        with self.database.engine.connect() as connection:
            autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
            autocommit.execute(text("VACUUM ANALYZE"))
            # Write the bulk load's pages out now, not in a checkpoint during the measurements.
            autocommit.execute(text("CHECKPOINT"))


@contextlib.contextmanager
def bench_env() -> Iterator[BenchEnv]:
    with (
        server_urls() as servers,
        private_redis_url(servers.redis_server_url) as redis_url,
        private_redis_url(servers.redis_server_url) as peer_broker_url,
        tempfile.TemporaryDirectory() as logs,
    ):
        database_url = private_database_url(servers.database_server_url, "bench")
        create_database(database_url)
        upgrade(database_url)
        log_dir = Path(logs)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "API_TOKENS": TOKEN,
            "SCRAPER_ALLOW_PRIVATE_NETWORKS": "true",
            # One fake host serves every account: keep the shared limiter in the path (its
            # cost is part of the figures) without letting it throttle.
            **FAKE_PLATFORM_LIMITS,
            "LOG_JSON": "true",
            "PORT": str(free_port()),
            "WORKER_METRICS_PORT": "0",
            "SCHEDULER_METRICS_PORT": "0",
            "BEAT_SCHEDULE_FILE": str(log_dir / "beat"),
            "BEAT_HEARTBEAT_FILE": str(log_dir / "beat.heartbeat"),
            "WORKER_HEARTBEAT_FILE": str(log_dir / "worker.heartbeat"),
        }
        settings = settings_from_env(env)
        configure_celery(settings)
        database = use_database(Database(settings, pool_size=4))
        fake = FakePlatform()
        fake.start()
        stack = Stack(env=env, log_dir=log_dir)
        try:
            yield BenchEnv(env, settings, database, stack, fake, peer_broker_url, log_dir)
        finally:
            stack.stop_all()
            fake.stop()
            database.dispose()
            drop_database(database_url)


@dataclass
class Process:
    """A peer process (plain uvicorn app or plain Celery worker) with its own log."""

    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        bin_dir = str(Path(sys.executable).parent)
        env = {**self.env, "PATH": f"{bin_dir}:{self.env.get('PATH', '')}"}
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO_ROOT,
            env=env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_for_http(url: str, timeout: float = 60) -> None:
    def answers() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout=timeout, interval=0.2, what=url)


def wait_for_celery_worker(log: Process, timeout: float = 60) -> None:
    wait_until(lambda: " ready." in log.log(), timeout=timeout, what="the worker to be ready")
    time.sleep(0.5)
