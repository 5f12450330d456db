"""What a test declares about fake accounts, failures and what the fake saw."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

FAKE_MASTODON_DOMAIN = "fake.social"

# Every fake account of either platform lives on one host, the fake platform, where the
# real platforms' per-host limits would throttle any bulk test. Processes scraping it get
# these settings; the limiter stays in the path without slowing anything down.
FAKE_PLATFORM_LIMITS: dict[str, str] = {
    "SCRAPER_MASTODON_REQUESTS_PER_SECOND": "100000",
    "SCRAPER_MASTODON_BURST": "100000",
    "SCRAPER_BLUESKY_REQUESTS_PER_SECOND": "100000",
    "SCRAPER_BLUESKY_BURST": "100000",
}


@dataclass(frozen=True)
class FakePost:
    """A post on a fake account.

    `is_boost` makes it a boost/repost, made at `created_at`, of another account's post
    (the counts then belong to the boosted post).
    """

    created_at: datetime
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    is_reply: bool = False
    is_boost: bool = False

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError("FakePost.created_at must be timezone-aware")


@dataclass(frozen=True)
class FakeFailure:
    """One canned answer; `body` defaults to the platform's usual error JSON. `headers` are
    sent as well (e.g. Location for a redirect, RateLimit-* for a limit)."""

    status: int
    retry_after: str | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    timestamp: datetime
    # The account key the request was attributed to (Mastodon user or Bluesky handle),
    # or the raw acct/actor/id value when no such account exists.
    account: str | None
