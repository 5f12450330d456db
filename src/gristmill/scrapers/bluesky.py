"""Bluesky adapter: the public AppView's getProfile and getAuthorFeed XRPC methods."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Mapping
from datetime import datetime
from typing import Any, ClassVar

import httpx

from gristmill.scrapers.base import AccountRef, PlatformScraper, Post, ProfileSnapshot
from gristmill.scrapers.payload import (
    as_list,
    as_object,
    int_field,
    parse_timestamp,
    str_field,
)
from gristmill.scrapers.transport import get_json

DEFAULT_ROOT = "https://public.api.bsky.app"
# getAuthorFeed's maximum page size.
PAGE_SIZE = 100

REASON_REPOST = "app.bsky.feed.defs#reasonRepost"
REASON_PIN = "app.bsky.feed.defs#reasonPin"

_HANDLE = re.compile(
    r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
_DID = re.compile(r"^did:[a-z]+:[A-Za-z0-9._:%-]*[A-Za-z0-9._-]$")


def _is_not_found(response: httpx.Response, body: Any) -> bool:
    # The AppView reports an unknown actor as HTTP 400 InvalidRequest "Profile not
    # found"; other 400s (bad parameters, taken-down accounts) are different permanent
    # failures.
    if response.status_code != 400 or not isinstance(body, Mapping):
        return False
    message = body.get("message")
    return (
        body.get("error") == "InvalidRequest"
        and isinstance(message, str)
        and "not found" in message.lower()
    )


class BlueskyScraper(PlatformScraper):
    platform: ClassVar[str] = "bluesky"

    @classmethod
    def validate_handle(cls, handle: str) -> None:
        if handle.startswith("@"):
            raise ValueError(
                f"bluesky handle {handle!r} must not start with '@'; use e.g. alice.bsky.social"
            )
        if handle.startswith("did:"):
            if len(handle) > 2048 or not _DID.match(handle):
                raise ValueError(
                    f"bluesky identifier {handle!r} is not a valid DID like did:plc:abc123"
                )
            return
        if len(handle) > 253 or not _HANDLE.match(handle):
            raise ValueError(
                f"bluesky handle {handle!r} is not a valid handle like "
                "alice.bsky.social or a DID like did:plc:..."
            )

    @classmethod
    def default_base_url(cls, handle: str) -> str:
        return DEFAULT_ROOT

    def _subject(self, account: AccountRef) -> str:
        return f"bluesky account {account.handle}"

    async def _profile(self, account: AccountRef) -> Mapping[str, Any]:
        self.validate_handle(account.handle)
        subject = self._subject(account)
        body, _ = await get_json(
            self._client,
            f"{self.api_root(account)}/xrpc/app.bsky.actor.getProfile",
            params={"actor": account.handle},
            subject=subject,
            platform=self.platform,
            is_not_found=_is_not_found,
            allow_private_networks=self._allow_private_networks,
        )
        return as_object(body, subject, "getProfile response")

    async def fetch_profile(self, account: AccountRef) -> ProfileSnapshot:
        data = await self._profile(account)
        subject = self._subject(account)
        return ProfileSnapshot(
            # Counts are optional in the lexicon; a brand-new account may omit them.
            followers=int_field(data, "followersCount", subject, default=0),
            following=int_field(data, "followsCount", subject, default=0),
            posts=int_field(data, "postsCount", subject, default=0),
        )

    async def iter_posts_since(
        self, account: AccountRef, since: datetime
    ) -> AsyncGenerator[list[Post], None]:
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware (UTC)")
        subject = self._subject(account)
        profile = await self._profile(account)
        # Page by DID so a handle change mid-backfill cannot switch accounts under us.
        did = str_field(profile, "did", subject)
        url = f"{self.api_root(account)}/xrpc/app.bsky.feed.getAuthorFeed"
        cursor: str | None = None
        seen_cursors: set[str] = set()
        while True:
            params = {
                "actor": did,
                "limit": str(PAGE_SIZE),
                "filter": "posts_with_replies",
                # Ask for the pin explicitly so it is handled the same way whatever the
                # server's default; it is skipped for stopping and de-duplicated later.
                "includePins": "true",
            }
            if cursor is not None:
                params["cursor"] = cursor
            body, _ = await get_json(
                self._client,
                url,
                params=params,
                subject=subject,
                platform=self.platform,
                is_not_found=_is_not_found,
                allow_private_networks=self._allow_private_networks,
            )
            page = as_object(body, subject, "getAuthorFeed response")
            feed = as_list(page.get("feed"), subject, "field 'feed'")
            posts, reached_since = self._parse_page(feed, did, since, subject)
            yield posts
            next_cursor = page.get("cursor")
            if reached_since or not feed or not isinstance(next_cursor, str) or not next_cursor:
                return
            if next_cursor in seen_cursors:
                return
            seen_cursors.add(next_cursor)
            cursor = next_cursor

    def _parse_page(
        self, feed: list[Any], did: str, since: datetime, subject: str
    ) -> tuple[list[Post], bool]:
        """The page's own posts in range, and whether the page reached past `since`."""
        posts: list[Post] = []
        reached_since = False
        for raw in feed:
            item = as_object(raw, subject, "feed item")
            reason = item.get("reason")
            reason_type = reason.get("$type") if isinstance(reason, Mapping) else None
            if reason_type == REASON_REPOST:
                continue
            post = as_object(item.get("post"), subject, "feed item 'post'")
            author = as_object(post.get("author"), subject, "post 'author'")
            if author.get("did") != did:
                # Someone else's post in this author's feed is a repost even without a
                # reason.
                continue
            record = as_object(post.get("record"), subject, "post 'record'")
            created_at = parse_timestamp(record.get("createdAt"), subject, "record.createdAt")
            if created_at < since:
                # A pinned post sits on top out of date order, so it says nothing about
                # how far back the feed has gone.
                if reason_type != REASON_PIN:
                    reached_since = True
                continue
            posts.append(
                Post(
                    uri=str_field(post, "uri", subject),
                    created_at=created_at,
                    is_reply="reply" in record,
                    likes=int_field(post, "likeCount", subject, default=0),
                    reposts=int_field(post, "repostCount", subject, default=0),
                    replies=int_field(post, "replyCount", subject, default=0),
                )
            )
        return posts, reached_since
