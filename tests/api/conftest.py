"""A real api process (the Procfile's `api` command under uvicorn) for the hostile-input tests.

The in-process `api` fixture skips uvicorn's HTTP parsing, which is where malformed requests
(invalid UTF-8 in a path, a lying Content-Length) meet the server first; these tests talk to
the process a pod runs instead. Its broker is a Redis db no worker listens on, so the jobs
that fuzzing starts stay pending and never reach a platform.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gristmill.db import Database
from tests.conftest import READ_TOKEN, WRITE_TOKEN
from tests.support.stack import Stack, free_port


@pytest.fixture(scope="session")
def api_process(
    test_env: dict[str, str],
    database: Database,
    idle_broker_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    env = {**test_env, "PORT": str(free_port()), "CELERY_BROKER_URL": idle_broker_url}
    running = Stack(env=env, log_dir=tmp_path_factory.mktemp("api-process"))
    running.start_all(["api"])
    yield running
    running.stop_all()


@pytest.fixture
def api_client(api_process: Stack, clean_db: Database) -> Iterator[httpx.Client]:
    """HTTP client of the real api process, authorised with the read-write token."""
    with httpx.Client(
        base_url=api_process.api_url,
        headers={"Authorization": f"Bearer {WRITE_TOKEN}"},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
def read_only_client(api_process: Stack, clean_db: Database) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=api_process.api_url,
        headers={"Authorization": f"Bearer {READ_TOKEN}"},
        timeout=10,
    ) as client:
        yield client
