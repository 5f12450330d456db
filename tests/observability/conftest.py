"""Fixtures for the metrics tests, on top of the shared ones in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from gristmill.celery_app import celery_app, configure_celery
from gristmill.db import Database
from gristmill.observability.cluster import ClusterCollector
from gristmill.settings import Settings
from tests.observability.support import ObsWorker


@pytest.fixture
def collector(test_settings: Settings, database: Database) -> Iterator[ClusterCollector]:
    """A cluster collector on the test Redis and database, without the database cache."""
    cluster = ClusterCollector(lambda: database, test_settings.broker_url, database_cache_seconds=0)
    yield cluster
    cluster.close()


@pytest.fixture
def test_broker(test_settings: Settings) -> Celery:
    """Gristmill's Celery app, publishing to the test broker from this process.

    Other fixtures (the in-process api, the fault tests' private Redis) point the app at
    another broker, and Celery keeps the producer pool of its first publish and the result
    backend of its first use, so the settings, that pool and that backend are reset here.
    """
    configure_celery(test_settings)
    internals: Any = celery_app  # the pools are private attributes, absent from the stubs
    if internals._pool is not None:
        internals._pool.force_close_all()
    internals._pool = None
    internals.amqp._producer_pool = None
    internals._local.__dict__.pop("backend", None)
    return celery_app


@pytest.fixture
def obs_worker(
    test_env: dict[str, str], test_broker: Celery, tmp_path: Path
) -> Iterator[ObsWorker]:
    """A real prefork worker running the test tasks on a queue nobody else consumes."""
    worker = ObsWorker(
        env={**test_env, "WORKER_HEARTBEAT_FILE": str(tmp_path / "worker.heartbeat")},
        log_path=tmp_path / "worker.log",
    )
    yield worker
    worker.stop()
