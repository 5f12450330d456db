"""One stack on private PostgreSQL and Redis for the whole chaos package, reset per scenario."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from gristmill.scrapers.hoststate import HOSTS_KEY, KEY_PREFIX
from tests.chaos import ledger
from tests.chaos.report import RESULTS, as_property
from tests.chaos.scale import Scale, current_scale
from tests.conftest import WRITE_TOKEN
from tests.fakeplatform import FakePlatform
from tests.support.faulty import WORKER_POOLS, FaultyStack, faulty_stack

PROCESSES = ["api", *WORKER_POOLS, "scheduler"]

CHAOS_ENV = {
    # Logs as the containers write them: the console format renders every traceback of an
    # outage with rich, which costs the 2 cores seconds that the api's answers then wait for.
    "LOG_JSON": "true",
    # Nothing fires on its own unless a scenario asks: schedules for 29 February only.
    "DAILY_SCRAPE_CRON": "0 0 29 2 *",
    "BACKFILL_CHECK_CRON": "0 0 29 2 *",
    "CLEANUP_CRON": "0 0 29 2 *",
    "HEALTH_CHECK_INTERVAL_SECONDS": "86400",
    "TASK_MAX_RETRIES": "3",
    # Jobs deferred behind a half-open circuit wait out its probe's lease (this + 5 s) even
    # when the probe succeeds at once: a short timeout keeps the platform scenario's drain short.
    "SCRAPER_TIMEOUT_SECONDS": "3",
    # The storm kills workers far more often than any cluster would, so one job can lose its
    # worker many times; the budget itself is tested in tests/worker. Here a lost worker must
    # never lose or double a job.
    "TASK_MAX_WORKER_LOSSES": "50",
    # Orphans and unacknowledged messages come back within seconds, so a short run drains.
    "JOB_HEARTBEAT_INTERVAL_SECONDS": "1",
    "JOB_HEARTBEAT_TIMEOUT_SECONDS": "8",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "6",
    # Small limits: a worker's grace period is its longest hard limit + 30 s (the chart's rule).
    "SCRAPE_SOFT_TIME_LIMIT_SECONDS": "20",
    "SCRAPE_HARD_TIME_LIMIT_SECONDS": "25",
    "BACKFILL_SOFT_TIME_LIMIT_SECONDS": "40",
    "BACKFILL_HARD_TIME_LIMIT_SECONDS": "45",
    "MAINTENANCE_SOFT_TIME_LIMIT_SECONDS": "20",
    "MAINTENANCE_HARD_TIME_LIMIT_SECONDS": "25",
    # A breaker that opens after 3 failures and probes after 1-2 s.
    "SCRAPER_BREAKER_FAILURE_THRESHOLD": "3",
    "SCRAPER_BREAKER_WINDOW_SECONDS": "60",
    "SCRAPER_BREAKER_OPEN_SECONDS": "1",
    "SCRAPER_BREAKER_MAX_OPEN_SECONDS": "2",
}


@pytest.fixture(autouse=True)
def _table_line(request: pytest.FixtureRequest) -> Iterator[None]:
    """The scenario's line of the table goes with its report (see tests/chaos/report.py)."""
    yield
    while RESULTS:
        request.node.user_properties.append(as_property(RESULTS.pop(0)))


@pytest.fixture(scope="session")
def scale() -> Scale:
    return current_scale()


@pytest.fixture(scope="package")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyStack]:
    log_dir = tmp_path_factory.mktemp("chaos")
    with faulty_stack(log_dir, WRITE_TOKEN, PROCESSES, CHAOS_ENV) as faulty:
        ledger.install_audit(faulty.database)
        yield faulty


def _forget_hosts(faulty: FaultyStack) -> None:
    client = redis.Redis.from_url(faulty.broker.url)
    try:
        keys = list(client.scan_iter(f"{KEY_PREFIX}*"))
        client.delete(*keys, HOSTS_KEY)
    finally:
        client.close()


@pytest.fixture
def chaos(chaos_stack: FaultyStack, fake_platform: FakePlatform) -> FaultyStack:
    """The stack healed from the last scenario's faults, its tables and circuits empty."""
    chaos_stack.heal(tuple(PROCESSES))
    ledger.reset(chaos_stack)
    _forget_hosts(chaos_stack)
    return chaos_stack
