from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from gristmill.scrapers import (
    AccountNotFoundError,
    AccountRef,
    DailyActivity,
    PermanentScrapeError,
    Post,
    ProfileSnapshot,
    aggregate_daily,
    window_start,
)
from tests.fakeplatform import FakeFailure, FakePlatform, FakePost

from .helpers import collect_pages, run, scraper

HANDLE = "alice.bsky.social"


def _account(fake: FakePlatform, handle: str = HANDLE) -> AccountRef:
    return AccountRef("bluesky", handle, fake.url)


def _flat(pages: list[list[Post]]) -> list[Post]:
    return [post for page in pages for post in page]


def test_profile_numbers_by_handle_and_by_did(fake: FakePlatform) -> None:
    did = fake.add_bluesky_account(HANDLE, followers=321, follows=45, posts_count=678)

    async def go(client: httpx.AsyncClient) -> list[ProfileSnapshot]:
        adapter = scraper("bluesky", client)
        return [
            await adapter.fetch_profile(_account(fake)),
            await adapter.fetch_profile(_account(fake, did)),
        ]

    expected = ProfileSnapshot(followers=321, following=45, posts=678)
    assert run(go) == [expected, expected]
    assert [r.query["actor"] for r in fake.requests] == [HANDLE, did]


def test_paging_by_cursor_across_pages(fake: FakePlatform) -> None:
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)
    posts = [FakePost(start - timedelta(minutes=10 * i)) for i in range(250)]
    did = fake.add_bluesky_account(HANDLE, followers=1, follows=1, posts_count=250, posts=posts)

    async def go(client: httpx.AsyncClient) -> list[list[Post]]:
        adapter = scraper("bluesky", client)
        return await collect_pages(adapter, _account(fake), start - timedelta(days=30))

    pages = run(go)
    assert [len(page) for page in pages] == [100, 100, 50]
    feed = [r for r in fake.requests if r.path.endswith("getAuthorFeed")]
    assert [("cursor" in r.query) for r in feed] == [False, True, True]
    assert {r.query["actor"] for r in feed} == {did}
    assert {r.query["filter"] for r in feed} == {"posts_with_replies"}
    created = [post.created_at for post in _flat(pages)]
    assert created == sorted(created, reverse=True)


def test_backfill_exact_daily_numbers_with_repost_and_pinned_post(
    fake: FakePlatform,
) -> None:
    today = date(2024, 3, 10)
    fake.add_bluesky_account(
        HANDLE,
        followers=1,
        follows=1,
        posts_count=8,
        posts=[
            FakePost(datetime(2024, 3, 10, 12, tzinfo=UTC), likes=5, reposts=1, replies=2),
            FakePost(datetime(2024, 3, 10, 0, 0, 0, tzinfo=UTC), likes=1),
            FakePost(datetime(2024, 3, 9, 23, 59, 59, tzinfo=UTC), likes=2),
            FakePost(datetime(2024, 3, 9, 8, tzinfo=UTC), likes=3, replies=1, is_reply=True),
            FakePost(datetime(2024, 3, 8, 10, tzinfo=UTC), likes=100, is_boost=True),
            FakePost(datetime(2024, 3, 6, 0, 0, 0, tzinfo=UTC), likes=4),
            FakePost(datetime(2024, 3, 5, 23, 59, 59, tzinfo=UTC), likes=50),
        ],
        # Pinned long ago: shown first, out of date order; must neither count nor stop paging.
        pinned=FakePost(datetime(2023, 1, 1, tzinfo=UTC), likes=1000),
    )

    async def go(client: httpx.AsyncClient) -> list[list[Post]]:
        adapter = scraper("bluesky", client)
        return await collect_pages(adapter, _account(fake), window_start(5, today))

    pages = run(go)
    posts = _flat(pages)
    assert sum(post.is_reply for post in posts) == 1
    assert aggregate_daily(posts, 5, today) == [
        DailyActivity(date(2024, 3, 6), posts=1, likes=4, reposts=0, replies=0),
        DailyActivity(date(2024, 3, 7), posts=0, likes=0, reposts=0, replies=0),
        DailyActivity(date(2024, 3, 8), posts=0, likes=0, reposts=0, replies=0),
        DailyActivity(date(2024, 3, 9), posts=2, likes=5, reposts=0, replies=1),
        DailyActivity(date(2024, 3, 10), posts=2, likes=6, reposts=1, replies=2),
    ]


def test_old_pinned_post_does_not_stop_paging(fake: FakePlatform) -> None:
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)
    posts = [FakePost(start - timedelta(minutes=i), likes=1) for i in range(150)]
    fake.add_bluesky_account(
        HANDLE,
        followers=1,
        follows=1,
        posts_count=151,
        posts=posts,
        pinned=FakePost(datetime(2020, 1, 1, tzinfo=UTC), likes=1000),
    )

    async def go(client: httpx.AsyncClient) -> list[list[Post]]:
        adapter = scraper("bluesky", client)
        return await collect_pages(adapter, _account(fake), start - timedelta(days=1))

    pages = run(go)
    assert [len(page) for page in pages] == [100, 50]
    assert all(post.likes == 1 for post in _flat(pages))


def test_pinned_post_in_range_is_counted_once(fake: FakePlatform) -> None:
    today = date(2024, 3, 10)
    fake.add_bluesky_account(
        HANDLE,
        followers=1,
        follows=1,
        posts_count=2,
        posts=[FakePost(datetime(2024, 3, 10, 9, tzinfo=UTC), likes=1)],
        pinned=FakePost(datetime(2024, 3, 9, 9, tzinfo=UTC), likes=7),
    )

    async def go(client: httpx.AsyncClient) -> list[list[Post]]:
        adapter = scraper("bluesky", client)
        return await collect_pages(adapter, _account(fake), window_start(2, today))

    posts = _flat(run(go))
    assert len(posts) == 3  # the pin shows up on top and again in date order
    assert aggregate_daily(posts, 2, today) == [
        DailyActivity(date(2024, 3, 9), posts=1, likes=7, reposts=0, replies=0),
        DailyActivity(date(2024, 3, 10), posts=1, likes=1, reposts=0, replies=0),
    ]


def test_unknown_actor_is_account_not_found(fake: FakePlatform) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        await scraper("bluesky", client).fetch_profile(_account(fake, "nobody.bsky.social"))

    with pytest.raises(AccountNotFoundError) as caught:
        run(go)
    assert str(caught.value) == "bluesky account nobody.bsky.social not found (HTTP 400)"


def test_other_400_is_permanent_not_not_found(fake: FakePlatform) -> None:
    fake.add_bluesky_account(HANDLE, followers=1, follows=1, posts_count=1)
    body = {"error": "AccountTakedown", "message": "Account has been suspended"}
    fake.fail_next(HANDLE, [FakeFailure(400, body=body)])

    async def go(client: httpx.AsyncClient) -> None:
        await scraper("bluesky", client).fetch_profile(_account(fake))

    with pytest.raises(PermanentScrapeError) as caught:
        run(go)
    assert not isinstance(caught.value, AccountNotFoundError)
    assert "AccountTakedown" in str(caught.value)
    assert "HTTP 400" in str(caught.value)
