"""The jobs a chaos scenario runs: single scrapes, one fan-out and backfills, with the numbers
the fake platform serves, so that every stored figure can be checked exactly afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import httpx

from gristmill.clock import utc_today
from tests.chaos.scale import Scale
from tests.fakeplatform import FakePlatform, FakePost
from tests.support.faulty import FaultyStack

# Posts per day on a backfilled account: with 30 days, more than one page (40) of statuses.
POSTS_PER_DAY = 3


@dataclass(frozen=True)
class DayNumbers:
    posts: int
    likes: int
    reposts: int
    replies: int


@dataclass
class Workload:
    scrape_keys: list[str]
    backfill_keys: list[str]
    days: int
    # What the fake platform serves: followers per account, and per-day activity per
    # backfilled account (every date of the window, zero days included).
    followers: dict[str, int]
    daily: dict[str, dict[date, DayNumbers]]
    job_ids: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [*self.scrape_keys, *self.backfill_keys]


def _posts_of(index: int, days: int) -> tuple[list[FakePost], dict[date, DayNumbers]]:
    today = utc_today()
    posts: list[FakePost] = []
    daily: dict[date, DayNumbers] = {}
    for offset in range(days):
        day = today - timedelta(days=offset)
        # Every fourth day has no post: the backfill must store a zero row for it.
        count = 0 if (offset + index) % 4 == 3 else POSTS_PER_DAY
        made = [
            # Seconds after midnight, so that today's posts are already in the past.
            FakePost(
                datetime.combine(day, time(0, 0, 10 + n), tzinfo=UTC),
                likes=offset + n + index,
                reposts=n,
                replies=(offset + index) % 3,
            )
            for n in range(count)
        ]
        posts.extend(made)
        daily[day] = DayNumbers(
            posts=len(made),
            likes=sum(post.likes for post in made),
            reposts=sum(post.reposts for post in made),
            replies=sum(post.replies for post in made),
        )
    return posts, daily


def declare(
    faulty: FaultyStack,
    fake: FakePlatform,
    scale: Scale,
    prefix: str,
    *,
    backfills: bool = True,
) -> Workload:
    """Accounts on the fake platform and in the database (not through the api: faster);
    without `backfills`, only the accounts that are scraped."""
    scrape_keys = [f"{prefix}s{index}" for index in range(scale.scrapes)]
    backfill_keys = [f"{prefix}b{index}" for index in range(scale.backfills if backfills else 0)]
    followers: dict[str, int] = {}
    daily: dict[str, dict[date, DayNumbers]] = {}
    for index, key in enumerate(scrape_keys):
        followers[key] = 1000 + index
        fake.add_mastodon_account(key, followers=followers[key], following=index, statuses=3)
    for index, key in enumerate(backfill_keys):
        posts, daily[key] = _posts_of(index, scale.backfill_days)
        followers[key] = 5000 + index
        fake.add_mastodon_account(
            key, followers=followers[key], following=1, statuses=len(posts), posts=posts
        )
    faulty.insert_accounts(fake, [*scrape_keys, *backfill_keys])
    return Workload(scrape_keys, backfill_keys, scale.backfill_days, followers, daily)


def _start(client: httpx.Client, path: str, body: dict[str, int] | None = None) -> str:
    response = client.post(path, json=body)
    assert response.status_code == 202, (path, response.status_code, response.text)
    job_id: str = response.json()["job_id"]
    return job_id


def start_jobs(client: httpx.Client, workload: Workload) -> None:
    """Every job through the api, interleaved as clients would send them: a scrape of each
    scrape account, one fan-out over all accounts, a backfill of each backfill account."""
    ids = workload.job_ids
    backfills = iter(workload.backfill_keys)
    half = len(workload.scrape_keys) // 2
    for position, key in enumerate(workload.scrape_keys):
        if position == half:
            ids.append(_start(client, "/api/jobs/scrape-platform/mastodon"))
        ids.append(_start(client, f"/api/jobs/scrape-account/{key}"))
        backfill = next(backfills, None)
        if backfill is not None:
            ids.append(
                _start(client, f"/api/jobs/backfill-account/{backfill}", {"days": workload.days})
            )
    for backfill in backfills:
        ids.append(
            _start(client, f"/api/jobs/backfill-account/{backfill}", {"days": workload.days})
        )
