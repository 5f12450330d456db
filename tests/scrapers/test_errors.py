"""How HTTP and network outcomes map to Transient / Permanent / NotFound errors."""

from __future__ import annotations

import email.utils
import socket
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gristmill.scrapers import (
    AccountNotFoundError,
    AccountRef,
    PermanentScrapeError,
    ProfileSnapshot,
    TransientScrapeError,
    get_scraper,
    parse_retry_after,
)
from tests.fakeplatform import FakeFailure, FakePlatform

from .helpers import run, scraper

ALICE = "alice@fake.social"


def _alice(fake: FakePlatform) -> AccountRef:
    fake.add_mastodon_account("alice", followers=1, following=2, statuses=3)
    return AccountRef("mastodon", ALICE, fake.url)


def _profile(account: AccountRef, *, timeout: float = 5.0) -> ProfileSnapshot:
    async def go(client: httpx.AsyncClient) -> ProfileSnapshot:
        return await scraper(account.platform, client).fetch_profile(account)

    return run(go, timeout=timeout)


def test_unknown_mastodon_user_is_account_not_found(fake: FakePlatform) -> None:
    with pytest.raises(AccountNotFoundError) as caught:
        _profile(AccountRef("mastodon", "nobody@fake.social", fake.url))
    assert str(caught.value) == "mastodon account nobody@fake.social not found (HTTP 404)"


def test_429_with_delta_seconds_sets_retry_after(fake: FakePlatform) -> None:
    account = _alice(fake)
    fake.fail_next(ALICE, [FakeFailure(429, retry_after="30")])
    with pytest.raises(TransientScrapeError) as caught:
        _profile(account)
    assert caught.value.retry_after == 30.0
    assert "HTTP 429" in str(caught.value)
    # The queued failure is used up; normal answers resume.
    assert _profile(account) == ProfileSnapshot(followers=1, following=2, posts=3)


def test_429_with_http_date_sets_retry_after(fake: FakePlatform) -> None:
    account = _alice(fake)
    when = datetime.now(UTC) + timedelta(seconds=120)
    header = email.utils.format_datetime(when, usegmt=True)
    fake.fail_next(ALICE, [FakeFailure(429, retry_after=header)])
    with pytest.raises(TransientScrapeError) as caught:
        _profile(account)
    assert caught.value.retry_after is not None
    assert 110 <= caught.value.retry_after <= 120


def test_failures_are_consumed_in_order(fake: FakePlatform) -> None:
    account = _alice(fake)
    fake.fail_next(ALICE, [FakeFailure(503, retry_after="5"), FakeFailure(403)])
    with pytest.raises(TransientScrapeError) as first:
        _profile(account)
    assert first.value.retry_after == 5.0
    assert "HTTP 503" in str(first.value)
    with pytest.raises(PermanentScrapeError) as second:
        _profile(account)
    assert not isinstance(second.value, AccountNotFoundError)
    assert "HTTP 403" in str(second.value)
    assert fake.request_count(ALICE) == 2


def test_missing_fields_are_permanent_with_clear_message(fake: FakePlatform) -> None:
    account = _alice(fake)
    fake.fail_next(ALICE, [FakeFailure(200, body={"id": "1", "username": "alice"})])
    with pytest.raises(PermanentScrapeError, match="missing field 'followers_count'"):
        _profile(account)


def test_connection_refused_is_transient() -> None:
    # Bind then close to get a port nobody listens on.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientScrapeError, match="could not reach 127.0.0.1"):
        _profile(AccountRef("mastodon", ALICE, f"http://127.0.0.1:{port}"))


def test_timeout_is_transient(fake: FakePlatform) -> None:
    account = _alice(fake)
    fake.set_latency(2.0, ALICE)
    started = time.monotonic()
    with pytest.raises(TransientScrapeError, match="timed out"):
        _profile(account, timeout=0.2)
    assert time.monotonic() - started < 1.5


def test_unsafe_base_url_is_refused_before_any_request(fake: FakePlatform) -> None:
    async def go(client: httpx.AsyncClient) -> ProfileSnapshot:
        adapter = get_scraper("mastodon", client, allow_private_networks=False)
        return await adapter.fetch_profile(AccountRef("mastodon", ALICE, fake.url))

    with pytest.raises(PermanentScrapeError, match="refusing to send request"):
        run(go)
    assert fake.request_count() == 0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("0", 0.0), ("  17 ", 17.0), ("-5", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_parse_retry_after_delta_and_junk(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date_in_the_past_is_zero() -> None:
    now = datetime(2024, 3, 10, 12, tzinfo=UTC)
    assert parse_retry_after("Sun, 10 Mar 2024 12:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Sun, 10 Mar 2024 11:00:00 GMT", now=now) == 0.0
