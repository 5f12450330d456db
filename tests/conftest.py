"""Shared fixtures: a private PostgreSQL database and Redis db per test run, real processes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from gristmill.celery_app import configure_celery
from gristmill.db import Database, init_database, use_database
from gristmill.migrations.runner import create_database, drop_database, upgrade
from gristmill.models import metadata
from gristmill.settings import Settings
from tests.chaos.report import print_table
from tests.fakeplatform import FAKE_PLATFORM_LIMITS, FakePlatform
from tests.support.services import (
    private_database_url,
    private_redis_url,
    server_urls,
    settings_from_env,
)
from tests.support.stack import Stack, free_port


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # Here, not in tests/chaos: with xdist only the main process prints, and it loads no
    # conftest below this one.
    print_table(terminalreporter)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the session's running stack go last (otherwise in their usual order): once it
    runs, its outbox relay, scheduler and workers act on the shared database, and the tests
    that drive the core directly must not find their jobs sent or settled behind their back."""
    items.sort(key=lambda item: "stack" in getattr(item, "fixturenames", ()))


WRITE_TOKEN = "test-write-token-0123456789"
READ_TOKEN = "test-read-token-0123456789"


def _worker_label() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def test_env() -> Iterator[dict[str, str]]:
    """The environment every Gristmill process of this run gets (the README's variables)."""
    with server_urls() as servers, private_redis_url(servers.redis_server_url) as redis_url:
        database_url = private_database_url(servers.database_server_url, _worker_label())
        create_database(database_url)
        upgrade(database_url)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "API_TOKENS": WRITE_TOKEN,
            "API_READ_TOKENS": READ_TOKEN,
            "SCRAPER_ALLOW_PRIVATE_NETWORKS": "true",
            "SCRAPER_TIMEOUT_SECONDS": "5",
            **FAKE_PLATFORM_LIMITS,
            "RETRY_BACKOFF_BASE_SECONDS": "0.5",
            "RETRY_BACKOFF_MAX_SECONDS": "2",
            "TASK_MAX_RETRIES": "3",
            "BACKFILL_SOFT_TIME_LIMIT_SECONDS": "8",
            "BACKFILL_HARD_TIME_LIMIT_SECONDS": "30",
            "JOB_HEARTBEAT_INTERVAL_SECONDS": "1",
            "JOB_HEARTBEAT_TIMEOUT_SECONDS": "15",
            "ORPHAN_CHECK_INTERVAL_SECONDS": "2",
            "LOG_JSON": "false",
            # The stack's beat must not start work of its own in the middle of a test (a real
            # Sunday 03:00 would start backfills): schedules that fire on 29 February only.
            "DAILY_SCRAPE_CRON": "0 0 29 2 *",
            "BACKFILL_CHECK_CRON": "0 0 29 2 *",
            "CLEANUP_CRON": "0 0 29 2 *",
            "HEALTH_CHECK_INTERVAL_SECONDS": "86400",
            "PORT": str(free_port()),
        }
        try:
            yield env
        finally:
            drop_database(database_url)


@pytest.fixture(scope="session")
def test_settings(test_env: dict[str, str]) -> Settings:
    settings = settings_from_env(test_env)
    configure_celery(settings)
    return settings


@pytest.fixture(scope="session")
def database(test_settings: Settings) -> Database:
    return init_database(test_settings)


@pytest.fixture
def clean_db(database: Database) -> Database:
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    with database.transaction() as session:
        session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return use_database(database)


@pytest.fixture
def redis_client(test_settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(test_settings.redis_url.get_secret_value())
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def fake_platform_server() -> Iterator[FakePlatform]:
    server = FakePlatform()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_platform(fake_platform_server: FakePlatform) -> FakePlatform:
    fake_platform_server.reset()
    return fake_platform_server


@pytest.fixture(scope="session")
def stack(
    test_env: dict[str, str], database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The api, every worker pool and the scheduler, as the Procfile runs them."""
    log_dir = tmp_path_factory.mktemp("stack")
    env = {
        **test_env,
        "BEAT_SCHEDULE_FILE": str(log_dir / "beat-schedule"),
        "BEAT_HEARTBEAT_FILE": str(log_dir / "beat.heartbeat"),
        "WORKER_HEARTBEAT_FILE": str(log_dir / "worker.heartbeat"),
    }
    running = Stack(env=env, log_dir=log_dir)
    running.start_all()
    yield running
    running.stop_all()


@pytest.fixture(scope="session")
def idle_broker_url() -> Iterator[str]:
    """A Redis db no worker listens on: jobs started by in-process api tests stay pending."""
    with server_urls() as servers, private_redis_url(servers.redis_server_url) as url:
        yield url


@pytest.fixture
def api_settings(test_settings: Settings, idle_broker_url: str) -> Settings:
    return test_settings.model_copy(update={"celery_broker_url": SecretStr(idle_broker_url)})


@pytest.fixture
def api(api_settings: Settings, clean_db: Database) -> Iterator[TestClient]:
    """The FastAPI app in-process, authorised with the read-write token."""
    from services.api.app import create_app

    app = create_app(api_settings)
    with TestClient(app, headers={"Authorization": f"Bearer {WRITE_TOKEN}"}) as client:
        yield client
    redis.Redis.from_url(api_settings.broker_url).flushdb()


@pytest.fixture
def stack_api(stack: Stack, clean_db: Database, test_settings: Settings) -> Iterator[httpx.Client]:
    """An HTTP client for the api process of the running stack, with the read-write token.
    Jobs this test process creates itself also go to the stack's broker."""
    configure_celery(test_settings)
    with httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.api_token}"}, timeout=10
    ) as client:
        yield client


def read_only_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {READ_TOKEN}"}
