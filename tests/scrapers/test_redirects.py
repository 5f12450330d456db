"""Redirects are followed a few hops, every hop checked like the first request."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gristmill.scrapers import AccountRef, PermanentScrapeError, ProfileSnapshot, get_scraper
from gristmill.scrapers.transport import MAX_REDIRECTS
from tests.fakeplatform import FakeFailure, FakePlatform

from .helpers import run, scraper

ALICE = "alice@fake.social"


def _alice(fake: FakePlatform) -> AccountRef:
    fake.add_mastodon_account("alice", followers=1, following=2, statuses=3)
    return AccountRef("mastodon", ALICE, fake.url)


def _profile(account: AccountRef) -> ProfileSnapshot:
    async def go(client: httpx.AsyncClient) -> ProfileSnapshot:
        return await scraper("mastodon", client).fetch_profile(account)

    return run(go)


def _lookup(fake: FakePlatform) -> str:
    return f"{fake.url}/api/v1/accounts/lookup?acct=alice"


def test_redirect_is_followed_to_the_moved_api(fake: FakePlatform) -> None:
    account = _alice(fake)
    fake.fail_next(ALICE, [FakeFailure(301, headers={"Location": _lookup(fake)})])
    assert _profile(account) == ProfileSnapshot(followers=1, following=2, posts=3)
    assert fake.request_count("alice") == 2


def test_redirect_chain_is_cut_after_the_limit(fake: FakePlatform) -> None:
    account = _alice(fake)
    hop = FakeFailure(302, headers={"Location": _lookup(fake)})
    fake.fail_next(ALICE, [hop] * (MAX_REDIRECTS + 1))
    with pytest.raises(PermanentScrapeError, match=f"more than {MAX_REDIRECTS} redirects"):
        _profile(account)
    assert fake.request_count("alice") == MAX_REDIRECTS + 1


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("https://10.0.0.1/api/v1/accounts/lookup", "private-network address"),
        ("http://127.0.0.1:9/", "plain http:// is not allowed"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("https://user:pw@example.social/", "username or password"),
    ],
)
def test_redirect_to_a_forbidden_target_is_refused_without_sending(
    location: str, reason: str
) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(307, headers={"Location": location})

    async def go() -> ProfileSnapshot:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            adapter = get_scraper("mastodon", client, allow_private_networks=False)
            account = AccountRef("mastodon", "a@x.social", "https://93.184.215.14")
            return await adapter.fetch_profile(account)

    with pytest.raises(PermanentScrapeError, match=f"refusing to send request: .*{reason}"):
        asyncio.run(go())
    # Only the first request went out; the hop was refused before any connection.
    assert sent == ["https://93.184.215.14/api/v1/accounts/lookup?acct=a"]


def test_other_3xx_answers_are_permanent(fake: FakePlatform) -> None:
    account = _alice(fake)
    fake.fail_next(ALICE, [FakeFailure(300, headers={"Location": _lookup(fake)})])
    with pytest.raises(PermanentScrapeError, match=r"unexpected redirect .*HTTP 300"):
        _profile(account)
