from __future__ import annotations

from contextlib import aclosing
from datetime import UTC, date, datetime, timedelta

import httpx

from gristmill.scrapers import (
    AccountRef,
    DailyActivity,
    Post,
    ProfileSnapshot,
    aggregate_daily,
    window_start,
)
from tests.fakeplatform import FakePlatform, FakePost

from .helpers import collect_pages, run, scraper


def _account(fake: FakePlatform, user: str) -> AccountRef:
    return AccountRef("mastodon", f"{user}@fake.social", fake.url)


def test_profile_numbers(fake: FakePlatform) -> None:
    fake.add_mastodon_account("alice", followers=1234, following=56, statuses=789)

    async def go(client: httpx.AsyncClient) -> ProfileSnapshot:
        return await scraper("mastodon", client).fetch_profile(_account(fake, "alice"))

    assert run(go) == ProfileSnapshot(followers=1234, following=56, posts=789)
    [request] = fake.requests
    assert request.path == "/api/v1/accounts/lookup"
    assert request.query == {"acct": "alice"}


def test_paging_follows_link_header_across_pages(fake: FakePlatform) -> None:
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)
    fake.add_mastodon_account(
        "alice",
        followers=1,
        following=1,
        statuses=95,
        posts=[FakePost(start - timedelta(hours=i), likes=i) for i in range(95)],
    )
    since = start - timedelta(days=30)

    async def go(client: httpx.AsyncClient) -> list[list[Post]]:
        adapter = scraper("mastodon", client)
        return await collect_pages(adapter, _account(fake, "alice"), since)

    pages = run(go)
    assert [len(page) for page in pages] == [40, 40, 15]
    statuses = [r for r in fake.requests if r.path.endswith("/statuses")]
    assert [r.query.get("max_id") is not None for r in statuses] == [False, True, True]
    assert all(r.query["limit"] == "40" for r in statuses)


def test_paging_stops_once_a_page_passes_since(fake: FakePlatform) -> None:
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)
    fake.add_mastodon_account(
        "alice",
        followers=1,
        following=1,
        statuses=200,
        posts=[FakePost(start - timedelta(days=i)) for i in range(200)],
    )

    async def go(client: httpx.AsyncClient) -> list[list[Post]]:
        adapter = scraper("mastodon", client)
        since = start - timedelta(days=10, hours=1)
        return await collect_pages(adapter, _account(fake, "alice"), since)

    pages = run(go)
    assert [len(page) for page in pages] == [11]
    assert sum(r.path.endswith("/statuses") for r in fake.requests) == 1


def test_caller_can_stop_iterating_early(fake: FakePlatform) -> None:
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)
    posts = [FakePost(start - timedelta(minutes=i)) for i in range(200)]
    fake.add_mastodon_account("alice", followers=1, following=1, statuses=200, posts=posts)

    async def go(client: httpx.AsyncClient) -> int:
        pages = scraper("mastodon", client).iter_posts_since(
            _account(fake, "alice"), start - timedelta(days=1)
        )
        async with aclosing(pages):
            first = await anext(pages)
        return len(first)

    assert run(go) == 40
    assert sum(r.path.endswith("/statuses") for r in fake.requests) == 1


def test_backfill_exact_daily_numbers(fake: FakePlatform) -> None:
    today = date(2024, 3, 10)
    fake.add_mastodon_account(
        "alice",
        followers=1,
        following=1,
        statuses=8,
        posts=[
            FakePost(datetime(2024, 3, 10, 12, tzinfo=UTC), likes=5, reposts=1, replies=2),
            FakePost(datetime(2024, 3, 10, 0, 0, 0, tzinfo=UTC), likes=1),
            FakePost(datetime(2024, 3, 9, 23, 59, 59, tzinfo=UTC), likes=2),
            FakePost(datetime(2024, 3, 9, 8, tzinfo=UTC), likes=3, replies=1, is_reply=True),
            # A boost of someone else's post: its counts are not ours.
            FakePost(datetime(2024, 3, 8, 10, tzinfo=UTC), likes=100, is_boost=True),
            FakePost(datetime(2024, 3, 6, 0, 0, 0, tzinfo=UTC), likes=4),
            FakePost(datetime(2024, 3, 5, 23, 59, 59, tzinfo=UTC), likes=50),
            FakePost(datetime(2024, 2, 20, 9, tzinfo=UTC), likes=70),
        ],
    )

    async def go(client: httpx.AsyncClient) -> list[DailyActivity]:
        adapter = scraper("mastodon", client)
        pages = await collect_pages(adapter, _account(fake, "alice"), window_start(5, today))
        assert any(post.is_reply for page in pages for post in page)
        return aggregate_daily([p for page in pages for p in page], 5, today)

    assert run(go) == [
        DailyActivity(date(2024, 3, 6), posts=1, likes=4, reposts=0, replies=0),
        DailyActivity(date(2024, 3, 7), posts=0, likes=0, reposts=0, replies=0),
        DailyActivity(date(2024, 3, 8), posts=0, likes=0, reposts=0, replies=0),
        DailyActivity(date(2024, 3, 9), posts=2, likes=5, reposts=0, replies=1),
        DailyActivity(date(2024, 3, 10), posts=2, likes=6, reposts=1, replies=2),
    ]


def test_account_without_posts_gives_zero_days(fake: FakePlatform) -> None:
    fake.add_mastodon_account("quiet", followers=0, following=0, statuses=0)
    today = date(2024, 3, 10)

    async def go(client: httpx.AsyncClient) -> list[DailyActivity]:
        adapter = scraper("mastodon", client)
        pages = await collect_pages(adapter, _account(fake, "quiet"), window_start(3, today))
        assert pages == [[]]
        return aggregate_daily([p for page in pages for p in page], 3, today)

    rows = run(go)
    assert [row.date for row in rows] == [date(2024, 3, 8), date(2024, 3, 9), today]
    assert all((r.posts, r.likes, r.reposts, r.replies) == (0, 0, 0, 0) for r in rows)
