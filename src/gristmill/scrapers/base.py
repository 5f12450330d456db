"""The adapter interface every platform scraper implements, and what it returns."""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar

import httpx

from gristmill.errors import JobDeferredError, PermanentJobError, TransientJobError

USER_AGENT = "Gristmill/0.1 (+https://github.com/gristmill/gristmill)"

PLATFORMS: tuple[str, ...] = ("mastodon", "bluesky")


@dataclass(frozen=True)
class AccountRef:
    """Which account to scrape; `base_url` (validated) overrides the platform root."""

    platform: str
    handle: str
    base_url: str | None = None


@dataclass(frozen=True)
class ProfileSnapshot:
    followers: int
    following: int
    posts: int


@dataclass(frozen=True)
class Post:
    """One of the account's own posts or replies (never a boost of someone else's)."""

    uri: str
    created_at: datetime
    is_reply: bool
    likes: int
    reposts: int
    replies: int


@dataclass(frozen=True)
class DailyActivity:
    date: date
    posts: int
    likes: int
    reposts: int
    replies: int


class ScrapeError(Exception):
    """Base of every failure a scraper reports; the message is meant for operators."""


class TransientScrapeError(ScrapeError, TransientJobError):
    """Worth retrying later: network trouble, timeouts, rate limits, server errors.
    `retry_after` is the seconds the platform asked us to wait, when it said so."""


class PermanentScrapeError(ScrapeError, PermanentJobError):
    """Retrying will not help: the request or the response is wrong."""


class PlatformDeferredError(ScrapeError, JobDeferredError):
    """The platform host must not be called now (its circuit breaker is open, it asked every
    client to pause, or its shared rate limit has a backlog): the job waits `delay_seconds`
    without spending a retry."""


class AccountNotFoundError(PermanentScrapeError):
    """The platform says the account does not exist."""


class PlatformScraper(abc.ABC):
    """One platform's adapter. Instances are cheap and hold no per-account state."""

    platform: ClassVar[str]

    def __init__(self, client: httpx.AsyncClient, *, allow_private_networks: bool) -> None:
        self._client = client
        self._allow_private_networks = allow_private_networks

    @classmethod
    @abc.abstractmethod
    def default_base_url(cls, handle: str) -> str:
        """The API root to use when the account has no `base_url` of its own."""

    @classmethod
    @abc.abstractmethod
    def validate_handle(cls, handle: str) -> None:
        """Raise ValueError, with a message a user can act on, if `handle` is bad."""

    @abc.abstractmethod
    async def fetch_profile(self, account: AccountRef) -> ProfileSnapshot:
        """Current follower / following / post counts."""

    @abc.abstractmethod
    def iter_posts_since(
        self, account: AccountRef, since: datetime
    ) -> AsyncGenerator[list[Post], None]:
        """Yield the account's own posts one fetched page at a time, newest first.

        Every fetched page yields a list (possibly empty, e.g. when it held only
        boosts), so the caller can count pages for progress. Posts older than `since`
        are left out and paging stops once a page reaches past `since`. Stopping
        iteration early cancels the rest.
        """

    def api_root(self, account: AccountRef) -> str:
        """`account.base_url` if set, else the platform default; no trailing slash."""
        root = account.base_url or self.default_base_url(account.handle)
        return root.rstrip("/")
