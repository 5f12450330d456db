"""JSON bodies shaped like the real Mastodon and Bluesky (AppView) API responses."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from tests.fakeplatform.models import FAKE_MASTODON_DOMAIN, FakePost

_B32_SORTABLE = "234567abcdefghijklmnopqrstuvwxyz"
_ACCOUNT_CREATED = datetime(2022, 11, 5, 9, 30, tzinfo=UTC)


def iso(moment: datetime) -> str:
    """Millisecond precision with a Z suffix, as both platforms print timestamps."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def make_did(handle: str) -> str:
    return "did:plc:" + _b32(hashlib.sha256(handle.encode()).digest())[:24]


def make_cid(seed: str) -> str:
    return "bafyrei" + _b32(hashlib.sha256(seed.encode()).digest())[:52]


def make_tid(moment: datetime, clock_id: int) -> str:
    """A record key in the TID format (base32-sortable microseconds + clock id)."""
    value = (int(moment.timestamp() * 1_000_000) << 10) | (clock_id & 0x3FF)
    chars = []
    for _ in range(13):
        chars.append(_B32_SORTABLE[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


def snowflake(moment: datetime, sequence: int) -> str:
    """A Mastodon-style status id: epoch milliseconds, then 16 sequence bits."""
    return str((int(moment.timestamp() * 1000) << 16) | (sequence & 0xFFFF))


# ---- Mastodon
# -------------------------------------------------------------------------


def mastodon_account(
    *, account_id: str, user: str, followers: int, following: int, statuses: int
) -> dict[str, Any]:
    base = f"https://{FAKE_MASTODON_DOMAIN}"
    return {
        "id": account_id,
        "username": user,
        "acct": user,
        "display_name": user.replace("_", " ").title(),
        "locked": False,
        "bot": False,
        "discoverable": True,
        "indexable": True,
        "group": False,
        "created_at": iso(_ACCOUNT_CREATED),
        "note": "<p>A fake account used by Gristmill's tests.</p>",
        "url": f"{base}/@{user}",
        "uri": f"{base}/users/{user}",
        "avatar": f"{base}/avatars/original/missing.png",
        "avatar_static": f"{base}/avatars/original/missing.png",
        "header": f"{base}/headers/original/missing.png",
        "header_static": f"{base}/headers/original/missing.png",
        "followers_count": followers,
        "following_count": following,
        "statuses_count": statuses,
        "last_status_at": None,
        "hide_collections": False,
        "noindex": False,
        "emojis": [],
        "roles": [],
        "fields": [],
    }


def mastodon_status(
    *, status_id: str, post: FakePost, account: dict[str, Any], other: dict[str, Any]
) -> dict[str, Any]:
    """A Status; a boost wraps a Status of `other` (the wrapper has no counts)."""
    base = f"https://{FAKE_MASTODON_DOMAIN}"
    user = account["username"]
    status: dict[str, Any] = {
        "id": status_id,
        "created_at": iso(post.created_at),
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "sensitive": False,
        "spoiler_text": "",
        "visibility": "public",
        "language": "en",
        "uri": f"{base}/users/{user}/statuses/{status_id}",
        "url": f"{base}/@{user}/{status_id}",
        "replies_count": post.replies,
        "reblogs_count": post.reposts,
        "favourites_count": post.likes,
        "edited_at": None,
        "content": f"<p>Status {status_id}</p>",
        "reblog": None,
        "application": {"name": "Web", "website": None},
        "account": account,
        "media_attachments": [],
        "mentions": [],
        "tags": [],
        "emojis": [],
        "card": None,
        "poll": None,
    }
    if post.is_reply:
        status["in_reply_to_id"] = str(int(status_id) - 7)
        status["in_reply_to_account_id"] = other["id"]
        status["mentions"] = [
            {
                "id": other["id"],
                "username": other["username"],
                "url": other["url"],
                "acct": other["acct"],
            }
        ]
    if post.is_boost:
        original_id = str(int(status_id) - 1_000_000)
        original = dict(status, id=original_id, account=other, reblog=None)
        original["uri"] = f"{other['uri']}/statuses/{original_id}"
        original["url"] = f"{other['url']}/{original_id}"
        status.update(
            uri=f"{base}/users/{user}/statuses/{status_id}/activity",
            url=None,
            content="",
            replies_count=0,
            reblogs_count=0,
            favourites_count=0,
            application=None,
            language=None,
            reblog=original,
        )
    return status


# ---- Bluesky
# --------------------------------------------------------------------------


def _avatar(did: str) -> str:
    return f"https://cdn.bsky.app/img/avatar/plain/{did}/{make_cid(did)}@jpeg"


def bluesky_profile_basic(did: str, handle: str) -> dict[str, Any]:
    return {
        "did": did,
        "handle": handle,
        "displayName": handle.split(".")[0].title(),
        "avatar": _avatar(did),
        "associated": {"chat": {"allowIncoming": "following"}},
        "viewer": {"muted": False, "blockedBy": False},
        "labels": [],
        "createdAt": iso(_ACCOUNT_CREATED),
    }


def bluesky_profile_detailed(
    *,
    did: str,
    handle: str,
    followers: int,
    follows: int,
    posts_count: int,
    pinned: dict[str, str] | None,
) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "did": did,
        "handle": handle,
        "displayName": handle.split(".")[0].title(),
        "description": "A fake account used by Gristmill's tests.",
        "avatar": _avatar(did),
        "banner": f"https://cdn.bsky.app/img/banner/plain/{did}/{make_cid(handle)}@jpeg",
        "followersCount": followers,
        "followsCount": follows,
        "postsCount": posts_count,
        "associated": {
            "lists": 0,
            "feedgens": 0,
            "starterPacks": 0,
            "labeler": False,
            "chat": {"allowIncoming": "following"},
        },
        "indexedAt": iso(_ACCOUNT_CREATED),
        "createdAt": iso(_ACCOUNT_CREATED),
        "viewer": {"muted": False, "blockedBy": False},
        "labels": [],
    }
    if pinned is not None:
        profile["pinnedPost"] = pinned
    return profile


def bluesky_post_view(
    *,
    author: dict[str, Any],
    rkey: str,
    created_at: datetime,
    likes: int,
    reposts: int,
    replies: int,
    reply_to: dict[str, Any] | None,
) -> dict[str, Any]:
    uri = f"at://{author['did']}/app.bsky.feed.post/{rkey}"
    record: dict[str, Any] = {
        "$type": "app.bsky.feed.post",
        "text": f"Post {rkey}",
        "createdAt": iso(created_at),
        "langs": ["en"],
    }
    if reply_to is not None:
        ref = {"uri": reply_to["uri"], "cid": reply_to["cid"]}
        record["reply"] = {"root": ref, "parent": ref}
    return {
        "$type": "app.bsky.feed.defs#postView",
        "uri": uri,
        "cid": make_cid(uri),
        "author": author,
        "record": record,
        "replyCount": replies,
        "repostCount": reposts,
        "likeCount": likes,
        "quoteCount": 0,
        "indexedAt": iso(created_at),
        "viewer": {"threadMuted": False, "embeddingDisabled": False},
        "labels": [],
    }
