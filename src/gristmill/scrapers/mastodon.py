"""Mastodon adapter: public account lookup and the account's statuses timeline."""

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
    malformed,
    parse_timestamp,
    str_field,
)
from gristmill.scrapers.transport import get_json

# Mastodon's maximum page size for account statuses.
PAGE_SIZE = 40

_USER = re.compile(r"^[A-Za-z0-9_]+([.-]+[A-Za-z0-9_]+)*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _is_hostname(value: str) -> bool:
    labels = value.split(".")
    if len(labels) < 2 or len(value) > 253:
        return False
    # A purely numeric TLD would make this an IP address, which is never an instance
    # handle.
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _is_not_found(response: httpx.Response, body: Any) -> bool:
    # Mastodon answers an unknown account with 404 {"error": "Record not found"}; a 404
    # with another body (e.g. a proxy page) still means no such account at this API
    # root.
    return response.status_code == 404


class MastodonScraper(PlatformScraper):
    platform: ClassVar[str] = "mastodon"

    @classmethod
    def validate_handle(cls, handle: str) -> None:
        if handle.startswith("@"):
            raise ValueError(
                f"mastodon handle {handle!r} must not start with '@'; use user@instance"
            )
        if handle.count("@") != 1:
            raise ValueError(
                f"mastodon handle {handle!r} must look like user@instance (exactly one '@')"
            )
        user, instance = handle.split("@")
        if not user or not instance:
            raise ValueError(f"mastodon handle {handle!r} must have both a user and an instance")
        if not _USER.match(user):
            raise ValueError(
                f"mastodon handle {handle!r}: user {user!r} may contain only letters, "
                "digits, '_', '.' and '-'"
            )
        if not _is_hostname(instance):
            raise ValueError(
                f"mastodon handle {handle!r}: instance {instance!r} is not a host name "
                "like example.social"
            )

    @classmethod
    def default_base_url(cls, handle: str) -> str:
        cls.validate_handle(handle)
        return f"https://{handle.split('@')[1].lower()}"

    def _subject(self, account: AccountRef) -> str:
        return f"mastodon account {account.handle}"

    async def _lookup(self, account: AccountRef) -> Mapping[str, Any]:
        self.validate_handle(account.handle)
        subject = self._subject(account)
        user = account.handle.split("@")[0]
        body, _ = await get_json(
            self._client,
            f"{self.api_root(account)}/api/v1/accounts/lookup",
            params={"acct": user},
            subject=subject,
            platform=self.platform,
            is_not_found=_is_not_found,
            allow_private_networks=self._allow_private_networks,
        )
        return as_object(body, subject, "account lookup response")

    async def fetch_profile(self, account: AccountRef) -> ProfileSnapshot:
        data = await self._lookup(account)
        subject = self._subject(account)
        return ProfileSnapshot(
            followers=int_field(data, "followers_count", subject),
            following=int_field(data, "following_count", subject),
            posts=int_field(data, "statuses_count", subject),
        )

    async def iter_posts_since(
        self, account: AccountRef, since: datetime
    ) -> AsyncGenerator[list[Post], None]:
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware (UTC)")
        subject = self._subject(account)
        data = await self._lookup(account)
        account_id = str_field(data, "id", subject)
        root = self.api_root(account)
        url: str | None = f"{root}/api/v1/accounts/{account_id}/statuses"
        params: dict[str, str] | None = {"limit": str(PAGE_SIZE)}
        seen_urls: set[str] = set()
        while url is not None:
            body, response = await get_json(
                self._client,
                url,
                params=params,
                subject=subject,
                platform=self.platform,
                is_not_found=_is_not_found,
                allow_private_networks=self._allow_private_networks,
            )
            statuses = as_list(body, subject, "statuses response")
            posts, oldest = self._parse_page(statuses, subject)
            yield [post for post in posts if post.created_at >= since]
            if not statuses or (oldest is not None and oldest < since):
                return
            url = self._next_url(response, subject)
            # The next link already carries limit and max_id.
            params = None
            if url is not None:
                if url in seen_urls:
                    return
                seen_urls.add(url)

    def _parse_page(self, statuses: list[Any], subject: str) -> tuple[list[Post], datetime | None]:
        posts: list[Post] = []
        oldest: datetime | None = None
        for raw in statuses:
            status = as_object(raw, subject, "status")
            created_at = parse_timestamp(status.get("created_at"), subject, "created_at")
            # Boosts are ordered by boost time, so they still tell us how far back we
            # are.
            oldest = created_at if oldest is None else min(oldest, created_at)
            if status.get("reblog") is not None:
                continue
            uri = status.get("uri") or status.get("url") or status.get("id")
            if not isinstance(uri, str) or not uri:
                raise malformed(subject, "status without 'uri' or 'id'")
            posts.append(
                Post(
                    uri=uri,
                    created_at=created_at,
                    is_reply=status.get("in_reply_to_id") is not None,
                    likes=int_field(status, "favourites_count", subject),
                    reposts=int_field(status, "reblogs_count", subject),
                    replies=int_field(status, "replies_count", subject),
                )
            )
        return posts, oldest

    def _next_url(self, response: httpx.Response, subject: str) -> str | None:
        link = response.links.get("next")
        if link is None or not link.get("url"):
            return None
        # Relative links are legal in a Link header; resolve them against the request
        # URL.
        got = response.url.join(link["url"])
        # A hostile server could aim the next link anywhere; only follow it on the origin
        # that answered (the API root, or where a checked redirect led; every connection is
        # SSRF-checked as well).
        wanted = response.url
        if (got.scheme, got.host, got.port) != (
            wanted.scheme,
            wanted.host,
            wanted.port,
        ):
            raise malformed(subject, f"next page link points to another origin: {got.host}")
        return str(got)
