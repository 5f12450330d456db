"""A platform down for a while: its jobs wait behind the circuit breaker instead of burning
their retries into dead letters, and all complete once it is back."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from gristmill.scrapers.hoststate import HOSTS_KEY, KEY_PREFIX
from gristmill.settings import Settings
from tests.fakeplatform import FakeFailure, FakePlatform
from tests.support.jobs import get_job, register_mastodon, start, wait_for_job
from tests.support.stack import Stack, wait_until

pytestmark = pytest.mark.integration

POOLS = ("worker_high", "worker_default")
# Opens after 3 failures; probes after 1 s, then 2 s at most: quick enough for a test.
BREAKER = {
    "SCRAPER_BREAKER_FAILURE_THRESHOLD": "3",
    "SCRAPER_BREAKER_WINDOW_SECONDS": "60",
    "SCRAPER_BREAKER_OPEN_SECONDS": "1",
    "SCRAPER_BREAKER_MAX_OPEN_SECONDS": "2",
}


def _forget_hosts(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    keys = list(client.scan_iter(f"{KEY_PREFIX}*"))
    if keys:
        client.delete(*keys)
    client.delete(HOSTS_KEY)
    client.close()


@pytest.fixture
def quick_breaker(stack: Stack, test_settings: Settings) -> Iterator[None]:
    _forget_hosts(test_settings)
    for name in POOLS:
        stack.kill(name, signal.SIGTERM)
        stack.start(name, BREAKER)
    yield
    _forget_hosts(test_settings)
    for name in POOLS:
        stack.kill(name, signal.SIGTERM)
        stack.start(name)


def test_jobs_wait_out_a_platform_outage_and_then_complete(
    stack_api: httpx.Client, fake_platform: FakePlatform, quick_breaker: None
) -> None:
    keys = [f"down{index}" for index in range(6)]
    for key in keys:
        register_mastodon(stack_api, fake_platform, key, followers=11)
    fake_platform.go_down(FakeFailure(503))
    parent_id = start(stack_api, "/api/jobs/scrape-all")
    single_id = start(stack_api, "/api/jobs/scrape-account/down0?force=true")
    wait_until(lambda: _breaker_state(stack_api) == "open", timeout=30, what="the breaker to open")
    # Down for longer than TASK_MAX_RETRIES (3) retries at 0.5-2 s backoff would last.
    outage_ends = time.monotonic() + 15
    while time.monotonic() < outage_ends:
        assert stack_api.get("/api/dead-letters").json()["items"] == []
        assert get_job(stack_api, single_id)["status"] in ("pending", "running")
        assert get_job(stack_api, parent_id)["status"] == "running"
        time.sleep(1)
    fake_platform.come_back()
    parent = wait_for_job(stack_api, parent_id, timeout=60)
    single = wait_for_job(stack_api, single_id, timeout=60)
    assert parent["status"] == "completed", parent
    assert parent["result"]["succeeded"] == len(keys)
    assert single["status"] == "completed", single
    assert single["retries"] <= 3
    assert stack_api.get("/api/dead-letters").json()["items"] == []
    wait_until(lambda: _breaker_state(stack_api) == "closed", timeout=30, what="closed")
    for key in keys:
        assert (
            stack_api.get(f"/api/accounts/{key}/metrics").json()["snapshots"][0]["followers"] == 11
        )


def _breaker_state(client: httpx.Client) -> str | None:
    hosts = client.get("/api/platforms").json()["hosts"]
    return str(hosts[0]["circuit"]["state"]) if hosts else None
