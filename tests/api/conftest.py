"""A real api process (the Procfile's `api` command under uvicorn) for the hostile-input tests.

The in-process `api` fixture skips uvicorn's HTTP parsing, which is where malformed requests
(invalid UTF-8 in a path, a lying Content-Length) meet the server first; these tests talk to
the process a pod runs instead. It has a database and a Redis db of its own: its outbox relay
must not send (or mark sent) the jobs other tests create and count, and the jobs that fuzzing
starts must stay pending, since no worker listens on its Redis db.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import make_url, text

from gristmill.db import Database
from gristmill.migrations.runner import create_database, drop_database, upgrade
from gristmill.models import metadata
from tests.conftest import WRITE_TOKEN
from tests.support.services import private_redis_url, server_urls, settings_from_env
from tests.support.stack import Stack, free_port


@pytest.fixture(scope="session")
def api_process_env(test_env: dict[str, str]) -> Iterator[dict[str, str]]:
    test_url = make_url(test_env["DATABASE_URL"])
    database_url = test_url.set(database=f"{test_url.database}_api").render_as_string(
        hide_password=False
    )
    create_database(database_url)
    upgrade(database_url)
    with server_urls() as servers, private_redis_url(servers.redis_server_url) as redis_url:
        try:
            yield {
                **test_env,
                "PORT": str(free_port()),
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
            }
        finally:
            drop_database(database_url)


@pytest.fixture(scope="session")
def api_process(
    api_process_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    running = Stack(env=api_process_env, log_dir=tmp_path_factory.mktemp("api-process"))
    running.start_all(["api"])
    yield running
    running.stop_all()


@pytest.fixture(scope="session")
def api_process_database(api_process_env: dict[str, str]) -> Iterator[Database]:
    database = Database(settings_from_env(api_process_env))
    yield database
    database.dispose()


@pytest.fixture
def api_db(api_process_database: Database) -> Database:
    """The api process's database, emptied."""
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    with api_process_database.transaction() as session:
        session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return api_process_database


@pytest.fixture
def api_client(api_process: Stack, api_db: Database) -> Iterator[httpx.Client]:
    """HTTP client of the real api process, authorised with the read-write token."""
    with httpx.Client(
        base_url=api_process.api_url,
        headers={"Authorization": f"Bearer {WRITE_TOKEN}"},
        timeout=10,
    ) as client:
        yield client
