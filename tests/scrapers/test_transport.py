"""Edge cases that the fake server cannot produce, using httpx.MockTransport."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx
import pytest

from gristmill.scrapers import (
    USER_AGENT,
    AccountRef,
    PermanentScrapeError,
    Post,
    ProfileSnapshot,
    get_scraper,
)
from tests.fakeplatform import FakePlatform

from .helpers import run

ROOT = "http://127.0.0.1:9"  # never contacted: MockTransport answers


async def _profile(handler: httpx.MockTransport, account: AccountRef) -> ProfileSnapshot:
    async with httpx.AsyncClient(transport=handler) as client:
        adapter = get_scraper(account.platform, client, allow_private_networks=True)
        return await adapter.fetch_profile(account)


def test_non_json_body_is_permanent() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>"))
    account = AccountRef("mastodon", "alice@x.social", ROOT)
    with pytest.raises(PermanentScrapeError, match="malformed JSON"):
        asyncio.run(_profile(transport, account))


def test_bluesky_skips_reposts_and_posts_by_other_authors() -> None:
    did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"

    def item(author: str, when: str) -> dict[str, object]:
        return {
            "post": {
                "uri": f"at://{author}/app.bsky.feed.post/{when}",
                "author": {"did": author, "handle": "x.bsky.social"},
                "record": {"$type": "app.bsky.feed.post", "createdAt": when},
                "likeCount": 2,
                "repostCount": 0,
                "replyCount": 0,
            }
        }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("getProfile"):
            return httpx.Response(200, json={"did": did, "handle": "a.bsky.social"})
        own = item(did, "2024-03-10T10:00:00.123456789Z")
        # Reposting your own post puts it in the feed again, with a reason and our did.
        self_repost = dict(own, reason={"$type": "app.bsky.feed.defs#reasonRepost"})
        feed = [
            self_repost,
            own,
            item("did:plc:bbbbbbbbbbbbbbbbbbbbbbbb", "2024-03-10T09:00:00Z"),
        ]
        return httpx.Response(200, json={"feed": feed})

    async def go() -> list[list[Post]]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            adapter = get_scraper("bluesky", client, allow_private_networks=True)
            account = AccountRef("bluesky", "a.bsky.social", ROOT)
            since = datetime(2024, 3, 1, tzinfo=UTC)
            return [page async for page in adapter.iter_posts_since(account, since)]

    [[post]] = asyncio.run(go())
    assert post.uri.startswith(f"at://{did}/")
    assert post.created_at == datetime(2024, 3, 10, 10, 0, 0, 123456, tzinfo=UTC)


def test_mastodon_next_link_to_another_origin_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("lookup"):
            return httpx.Response(200, json={"id": "1"})
        status = {
            "id": "9",
            "uri": "https://x.social/users/a/statuses/9",
            "created_at": "2024-03-10T10:00:00.000Z",
            "in_reply_to_id": None,
            "reblog": None,
            "favourites_count": 1,
            "reblogs_count": 0,
            "replies_count": 0,
        }
        link = '<http://10.0.0.1/api/v1/accounts/1/statuses?max_id=9>; rel="next"'
        return httpx.Response(200, json=[status], headers={"Link": link})

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            adapter = get_scraper("mastodon", client, allow_private_networks=True)
            account = AccountRef("mastodon", "a@x.social", ROOT)
            since = datetime(2024, 3, 1, tzinfo=UTC)
            async for _ in adapter.iter_posts_since(account, since):
                pass

    with pytest.raises(PermanentScrapeError, match="another origin: 10.0.0.1"):
        asyncio.run(go())


def test_user_agent_is_sent(fake: FakePlatform) -> None:
    fake.add_mastodon_account("alice", followers=1, following=1, statuses=1)
    seen: list[str] = []

    async def go(client: httpx.AsyncClient) -> None:
        response = await client.get(f"{fake.url}/api/v1/accounts/lookup?acct=alice")
        seen.append(response.request.headers["User-Agent"])

    run(go)
    assert seen == [USER_AGENT]


def test_many_concurrent_requests(fake: FakePlatform) -> None:
    fake.add_mastodon_account("alice", followers=5, following=6, statuses=7)
    fake.set_latency(0.3)
    account = AccountRef("mastodon", "alice@fake.social", fake.url)

    async def go(client: httpx.AsyncClient) -> list[ProfileSnapshot]:
        adapter = get_scraper("mastodon", client, allow_private_networks=True)
        return await asyncio.gather(*(adapter.fetch_profile(account) for _ in range(300)))

    started = time.monotonic()
    results = run(go, timeout=10)
    elapsed = time.monotonic() - started
    assert results == [ProfileSnapshot(followers=5, following=6, posts=7)] * 300
    assert fake.request_count("alice") == 300
    # One after another this would take 90 s; concurrently, one latency and some overhead.
    assert elapsed < 6
