"""Shared per-host rate limits and pauses, against the test run's Redis and the fake platform."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

from gristmill.errors import JobDeferredError, TransientJobError
from gristmill.scrapers import (
    AccountRef,
    PlatformDeferredError,
    ProfileSnapshot,
    TransientScrapeError,
)
from gristmill.scrapers.guard import GUARD_UNAVAILABLE
from gristmill.scrapers.ratelimit import (
    DEFAULT_429_PAUSE_SECONDS,
    MAX_PAUSE_SECONDS,
    pause_from_response,
    platform_limits,
)
from gristmill.settings import Settings
from tests.fakeplatform import FakeFailure, FakePlatform

from .guard_support import fetch_all, fetch_one, guard_settings, host_state

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _accounts(fake: FakePlatform, count: int) -> list[AccountRef]:
    for index in range(count):
        fake.add_mastodon_account(f"u{index}", followers=index, following=0, statuses=0)
    return [AccountRef("mastodon", f"u{i}@fake.social", fake.url) for i in range(count)]


def _host(fake: FakePlatform) -> str:
    return fake.url.removeprefix("http://")


@pytest.fixture
def redis_url(test_settings: Settings, redis_client: redis.Redis) -> str:
    return test_settings.redis_url.get_secret_value()


def test_bucket_is_shared_by_every_worker(fake: FakePlatform, redis_url: str) -> None:
    settings = guard_settings(
        redis_url,
        scraper_mastodon_requests_per_second=10.0,
        scraper_mastodon_burst=5,
        scraper_max_throttle_wait_seconds=2.0,
    )
    accounts = _accounts(fake, 20)
    started = datetime.now(UTC)
    outcomes = fetch_all(settings, accounts, workers=3)
    elapsed = (datetime.now(UTC) - started).total_seconds()
    assert all(isinstance(outcome, ProfileSnapshot) for outcome in outcomes), outcomes
    # 5 at once, then 15 at 10/s between three workers: at least 1.5 s, however split.
    assert elapsed >= 1.45
    # The bucket was full when the first request came, after `started`: the n-th request
    # cannot have reached the platform before its token existed, however slow the machine.
    stamps = sorted(record.timestamp for record in fake.requests)
    for index, stamp in enumerate(stamps):
        allowed_at = max(0.0, (index + 1 - 5) / 10)
        assert (stamp - started).total_seconds() >= allowed_at - 0.01, (index, stamp - started)
    state = host_state(settings, _host(fake))
    assert (state.platform, state.requests_per_second, state.burst) == ("mastodon", 10.0, 5)


def test_long_waits_defer_jobs_onto_spread_out_slots(fake: FakePlatform, redis_url: str) -> None:
    settings = guard_settings(
        redis_url,
        scraper_mastodon_requests_per_second=1.0,
        scraper_mastodon_burst=2,
        scraper_max_throttle_wait_seconds=0.5,
    )
    outcomes = fetch_all(settings, _accounts(fake, 6), workers=2)
    sent = [o for o in outcomes if isinstance(o, ProfileSnapshot)]
    deferred = [o for o in outcomes if isinstance(o, PlatformDeferredError)]
    assert (len(sent), len(deferred)) == (2, 4), outcomes
    assert fake.request_count() == 2
    for error in deferred:
        # Not the job's fault: no retry is spent.
        assert isinstance(error, JobDeferredError)
        assert not isinstance(error, TransientJobError)
        assert "at its shared rate limit" in str(error)
    delays = sorted(error.delay_seconds for error in deferred)
    # One slot per second at the host's rate: the backlog comes back spread out.
    assert delays[0] == pytest.approx(1.0, abs=0.3)
    for earlier, later in zip(delays, delays[1:], strict=False):
        assert later - earlier == pytest.approx(1.0, abs=0.3)


def test_retry_after_pauses_the_host_for_every_worker(fake: FakePlatform, redis_url: str) -> None:
    settings = guard_settings(redis_url)
    [alice, bob] = _accounts(fake, 2)
    fake.fail_next("u0", [FakeFailure(429, retry_after="30")])
    with pytest.raises(TransientScrapeError, match="HTTP 429"):
        fetch_one(settings, alice)
    with pytest.raises(PlatformDeferredError, match="paused at the platform's request") as caught:
        fetch_one(settings, bob)
    assert 29 <= caught.value.delay_seconds <= 34
    assert fake.request_count("u1") == 0
    state = host_state(settings, _host(fake))
    assert state.pause_reason == "retry_after"
    assert state.paused_until is not None


def test_a_short_pause_is_waited_out_inside_the_request(fake: FakePlatform, redis_url: str) -> None:
    settings = guard_settings(redis_url, scraper_max_throttle_wait_seconds=2.0)
    [alice, bob] = _accounts(fake, 2)
    fake.fail_next("u0", [FakeFailure(503, retry_after="1")])
    with pytest.raises(TransientScrapeError, match="HTTP 503"):
        fetch_one(settings, alice)
    started = time.monotonic()
    assert fetch_one(settings, bob) == ProfileSnapshot(followers=1, following=0, posts=0)
    assert time.monotonic() - started >= 0.8


def test_exhausted_ratelimit_headers_pause_every_worker(fake: FakePlatform, redis_url: str) -> None:
    settings = guard_settings(redis_url)
    [alice, bob] = _accounts(fake, 2)
    reset = (datetime.now(UTC) + timedelta(seconds=20)).isoformat().replace("+00:00", "Z")
    # Mastodon's dialect: the request that used the last token still succeeds.
    fake.set_response_headers({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    assert fetch_one(settings, alice) == ProfileSnapshot(followers=0, following=0, posts=0)
    with pytest.raises(PlatformDeferredError) as caught:
        fetch_one(settings, bob)
    assert 15 <= caught.value.delay_seconds <= 24
    assert fake.request_count("u1") == 0
    assert host_state(settings, _host(fake)).pause_reason == "rate_limit_exhausted"


def test_unreachable_redis_lets_requests_through_unguarded(fake: FakePlatform) -> None:
    settings = guard_settings("redis://127.0.0.1:1/0")
    [alice] = _accounts(fake, 1)
    before = GUARD_UNAVAILABLE.labels("mastodon")._value.get()
    assert fetch_one(settings, alice) == ProfileSnapshot(followers=0, following=0, posts=0)
    assert GUARD_UNAVAILABLE.labels("mastodon")._value.get() == before + 1


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {"Retry-After": "12"}, (12.0, "retry_after")),
        (503, {"Retry-After": "Tue, 10 Mar 2026 12:01:00 GMT"}, (60.0, "retry_after")),
        (429, {"Retry-After": "0"}, None),
        (429, {}, (DEFAULT_429_PAUSE_SECONDS, "too_many_requests")),
        (429, {"Retry-After": "999999"}, (MAX_PAUSE_SECONDS, "retry_after")),
        (200, {"Retry-After": "30"}, None),
        (
            200,
            {"RateLimit-Remaining": "0", "RateLimit-Reset": "25"},
            (25.0, "rate_limit_exhausted"),
        ),
        (
            200,
            {"ratelimit-remaining": "0", "ratelimit-reset": str(int(NOW.timestamp()) + 40)},
            (40.0, "rate_limit_exhausted"),
        ),
        (
            200,
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2026-03-10T12:05:00.000Z"},
            (300.0, "rate_limit_exhausted"),
        ),
        (200, {"RateLimit": '"default";r=0;t=7'}, (7.0, "rate_limit_exhausted")),
        (200, {"RateLimit": '"default";r=3;t=7'}, None),
        (200, {"X-RateLimit-Remaining": "4", "X-RateLimit-Reset": "30"}, None),
        (200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "soon"}, None),
        (200, {"X-RateLimit-Remaining": "0"}, None),
    ],
)
def test_pause_from_every_header_dialect(
    status: int, headers: dict[str, str], expected: tuple[float, str] | None
) -> None:
    import httpx

    assert pause_from_response(status, httpx.Headers(headers), now=NOW) == expected


def test_every_platform_has_limits() -> None:
    settings = Settings.model_validate({})
    assert platform_limits(settings, "mastodon").requests_per_second == 1.0
    assert platform_limits(settings, "bluesky").burst == 50


def test_hundreds_of_requests_in_flight_share_a_few_redis_connections(
    fake: FakePlatform, redis_url: str
) -> None:
    settings = guard_settings(redis_url)
    before = GUARD_UNAVAILABLE.labels("mastodon")._value.get()
    outcomes = fetch_all(settings, _accounts(fake, 300))
    assert all(isinstance(outcome, ProfileSnapshot) for outcome in outcomes)
    # Every request was guarded: none went out because Redis refused a connection.
    assert GUARD_UNAVAILABLE.labels("mastodon")._value.get() == before
