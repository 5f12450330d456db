"""Circuit breaker per platform host, shared through Redis, against the fake platform."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis

from gristmill.errors import JobDeferredError
from gristmill.scrapers import (
    AccountRef,
    PlatformDeferredError,
    ProfileSnapshot,
    TransientScrapeError,
)
from gristmill.scrapers.guard import CIRCUIT_OPENED, GuardConfig, HostGuard
from gristmill.scrapers.hoststate import CLOSED, HALF_OPEN, OPEN
from gristmill.settings import Settings
from tests.fakeplatform import FakeFailure, FakePlatform
from tests.support.stack import wait_until

from .guard_support import fetch_all, fetch_one, guard_settings, host_state


@pytest.fixture
def redis_url(test_settings: Settings, redis_client: redis.Redis) -> str:
    return test_settings.redis_url.get_secret_value()


def _account(fake: FakePlatform, user: str = "alice") -> AccountRef:
    fake.add_mastodon_account(user, followers=7, following=8, statuses=9)
    return AccountRef("mastodon", f"{user}@fake.social", fake.url)


def _host(fake: FakePlatform) -> str:
    return fake.url.removeprefix("http://")


def _settings(redis_url: str, **fields: object) -> Settings:
    defaults: dict[str, object] = {
        "scraper_breaker_failure_threshold": 3,
        "scraper_breaker_open_seconds": 1.0,
        "scraper_breaker_max_open_seconds": 4.0,
    }
    return guard_settings(redis_url, **{**defaults, **fields})


def test_burst_of_failures_opens_the_circuit_then_a_probe_closes_it(
    fake: FakePlatform, redis_url: str
) -> None:
    settings = _settings(redis_url)
    alice = _account(fake)
    fake.fail_next("alice", [FakeFailure(500), FakeFailure(502), FakeFailure(503)])
    opened_before = CIRCUIT_OPENED.labels("mastodon")._value.get()
    for _ in range(2):
        with pytest.raises(TransientScrapeError, match="server error"):
            fetch_one(settings, alice)
    # The failure that opens the circuit already defers its job instead of spending a retry.
    with pytest.raises(PlatformDeferredError, match="circuit breaker open") as opened:
        fetch_one(settings, alice)
    assert isinstance(opened.value, JobDeferredError)
    assert 0.9 <= opened.value.delay_seconds <= 1.2
    assert "HTTP 503" in str(opened.value)
    assert CIRCUIT_OPENED.labels("mastodon")._value.get() == opened_before + 1
    # While open, nobody calls the host.
    with pytest.raises(PlatformDeferredError, match="circuit breaker open"):
        fetch_one(settings, alice)
    assert fake.request_count("alice") == 3
    state = host_state(settings, _host(fake))
    assert (state.breaker_state, state.failures, state.opened_count) == (OPEN, 3, 1)
    assert state.last_failure == "HTTP 503"

    wait_until(
        lambda: host_state(settings, _host(fake)).breaker_state == HALF_OPEN,
        timeout=5,
        what="the circuit to allow a probe",
    )
    assert fetch_one(settings, alice) == ProfileSnapshot(followers=7, following=8, posts=9)
    state = host_state(settings, _host(fake))
    assert (state.breaker_state, state.failures) == (CLOSED, 0)
    assert fake.request_count("alice") == 4


def test_one_probe_at_a_time_and_a_failed_probe_doubles_the_wait(
    fake: FakePlatform, redis_url: str
) -> None:
    settings = _settings(redis_url, scraper_breaker_failure_threshold=2)
    alice, bob = _account(fake, "alice"), _account(fake, "bob")
    fake.fail_next("alice", [FakeFailure(500)] * 3)
    outcomes = fetch_all(settings, [alice, alice])
    assert any(isinstance(o, PlatformDeferredError) for o in outcomes), outcomes
    wait_until(
        lambda: host_state(settings, _host(fake)).breaker_state == HALF_OPEN,
        timeout=5,
        what="the circuit to allow a probe",
    )
    # The probe (alice) is slow and fails; bob, asking while it is in flight, must wait.
    fake.set_latency(1.0, "alice")
    outcomes: list[object] = []
    probing = threading.Thread(target=lambda: outcomes.extend(fetch_all(settings, [alice])))
    probing.start()
    wait_until(lambda: fake.request_count("alice") == 3, timeout=5, what="the probe to arrive")
    [other] = fetch_all(settings, [bob])
    probing.join(10)
    [probe] = outcomes
    assert isinstance(probe, PlatformDeferredError)
    assert isinstance(other, PlatformDeferredError)
    assert "half-open" in str(other)
    assert fake.request_count("bob") == 0
    # The failed probe keeps the host away twice as long as the first time.
    assert 1.9 <= probe.delay_seconds <= 2.3
    state = host_state(settings, _host(fake))
    assert (state.breaker_state, state.opened_count) == (OPEN, 2)


def test_timeouts_and_refused_connections_count_as_failures(
    fake: FakePlatform, redis_url: str
) -> None:
    settings = _settings(
        redis_url, scraper_breaker_failure_threshold=2, scraper_timeout_seconds=0.3
    )
    alice = _account(fake)
    fake.set_latency(2.0, "alice")
    with pytest.raises(TransientScrapeError, match="timed out"):
        fetch_one(settings, alice)
    with pytest.raises(PlatformDeferredError, match="ReadTimeout"):
        fetch_one(settings, alice)


def test_client_errors_do_not_count_and_a_success_forgets_failures(
    fake: FakePlatform, redis_url: str
) -> None:
    settings = _settings(redis_url)
    alice = _account(fake)
    fake.fail_next(
        "alice",
        [FakeFailure(500), FakeFailure(500), FakeFailure(403), FakeFailure(404)],
    )
    outcomes = [fetch_all(settings, [alice])[0] for _ in range(5)]
    assert not any(isinstance(o, PlatformDeferredError) for o in outcomes), outcomes
    assert host_state(settings, _host(fake)).failures == 0
    fake.fail_next("alice", [FakeFailure(500), FakeFailure(500)])
    fetch_all(settings, [alice, alice])
    assert host_state(settings, _host(fake)).failures == 2


def test_failures_outside_the_window_do_not_add_up(fake: FakePlatform, redis_url: str) -> None:
    settings = _settings(redis_url, scraper_breaker_window_seconds=0.5)
    alice = _account(fake)
    fake.fail_next("alice", [FakeFailure(500)] * 4)
    for _ in range(2):
        fetch_all(settings, [alice])
    time.sleep(0.6)  # the window is a span of time: nothing to poll for
    for _ in range(2):
        outcome = fetch_all(settings, [alice])[0]
        assert isinstance(outcome, TransientScrapeError), outcome
    assert host_state(settings, _host(fake)).breaker_state == CLOSED


def test_a_guard_survives_many_event_loops_and_reuse_on_one(
    fake: FakePlatform, redis_url: str
) -> None:
    # Today a job runs its own event loop; after the engine rewrite one loop serves many jobs.
    # The guard's Redis client must follow either way.
    settings = _settings(redis_url)
    alice = _account(fake)
    guard = HostGuard(GuardConfig.from_settings(settings))
    for _ in range(3):
        admission = asyncio.run(guard.admit(_host(fake), "mastodon"))
        assert admission is not None

    async def many() -> int:
        return sum([await guard.admit(_host(fake), "mastodon") is not None for _ in range(50)])

    assert asyncio.run(many()) == 50
    assert fetch_one(settings, alice).followers == 7
