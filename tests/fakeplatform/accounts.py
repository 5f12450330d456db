"""Build a fake account's API payloads once, when a test declares the account."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tests.fakeplatform import payloads
from tests.fakeplatform.models import FakePost

REASON_REPOST = "app.bsky.feed.defs#reasonRepost"
REASON_PIN = "app.bsky.feed.defs#reasonPin"

_MASTODON_ID_BASE = 109_000_000_000_000_000


@dataclass
class MastodonAccount:
    user: str
    entity: dict[str, Any]
    statuses: list[dict[str, Any]]  # newest first


@dataclass
class BlueskyAccount:
    handle: str
    did: str
    profile: dict[str, Any]
    items: list[dict[str, Any]]  # FeedViewPosts, newest first
    pinned_item: dict[str, Any] | None


def build_mastodon_account(
    user: str,
    *,
    followers: int,
    following: int,
    statuses: int,
    posts: list[FakePost],
    next_sequence: Callable[[], int],
) -> MastodonAccount:
    entity = payloads.mastodon_account(
        account_id=str(_MASTODON_ID_BASE + next_sequence()),
        user=user,
        followers=followers,
        following=following,
        statuses=statuses,
    )
    other = payloads.mastodon_account(
        account_id=str(_MASTODON_ID_BASE + next_sequence()),
        user="someone_else",
        followers=3,
        following=3,
        statuses=3,
    )
    built = [
        payloads.mastodon_status(
            status_id=payloads.snowflake(post.created_at, next_sequence()),
            post=post,
            account=entity,
            other=other,
        )
        for post in posts
    ]
    built.sort(key=lambda status: int(status["id"]), reverse=True)
    if built:
        entity["last_status_at"] = built[0]["created_at"][:10]
    return MastodonAccount(user, entity, built)


def build_bluesky_account(
    handle: str,
    *,
    followers: int,
    follows: int,
    posts_count: int,
    posts: list[FakePost],
    pinned: FakePost | None,
    next_sequence: Callable[[], int],
) -> BlueskyAccount:
    did = payloads.make_did(handle)
    me = payloads.bluesky_profile_basic(did, handle)
    other_handle = "someone-else.bsky.social"
    other = payloads.bluesky_profile_basic(payloads.make_did(other_handle), other_handle)
    timed: list[tuple[datetime, dict[str, Any]]] = []
    pinned_item: dict[str, Any] | None = None
    # The pinned post is an ordinary post too, so it also takes its place in date order.
    for post in [*posts, *([pinned] if pinned else [])]:
        item = _bluesky_item(post, me, other, next_sequence())
        timed.append((post.created_at, item))
        if post is pinned:
            pinned_item = {"post": item["post"], "reason": {"$type": REASON_PIN}}
    timed.sort(key=lambda pair: pair[0], reverse=True)
    pinned_ref = None
    if pinned_item is not None:
        pinned_ref = {
            "uri": pinned_item["post"]["uri"],
            "cid": pinned_item["post"]["cid"],
        }
    profile = payloads.bluesky_profile_detailed(
        did=did,
        handle=handle,
        followers=followers,
        follows=follows,
        posts_count=posts_count,
        pinned=pinned_ref,
    )
    return BlueskyAccount(handle, did, profile, [item for _, item in timed], pinned_item)


def _bluesky_item(
    post: FakePost, me: dict[str, Any], other: dict[str, Any], sequence: int
) -> dict[str, Any]:
    if post.is_boost:
        # The reposted post is someone else's and older; the reason carries the repost.
        original_at = post.created_at - timedelta(hours=1)
        original = payloads.bluesky_post_view(
            author=other,
            rkey=payloads.make_tid(original_at, sequence),
            created_at=original_at,
            likes=post.likes,
            reposts=post.reposts,
            replies=post.replies,
            reply_to=None,
        )
        repost_uri = (
            f"at://{me['did']}/app.bsky.feed.repost/{payloads.make_tid(post.created_at, sequence)}"
        )
        reason = {
            "$type": REASON_REPOST,
            "by": me,
            "uri": repost_uri,
            "cid": payloads.make_cid(repost_uri),
            "indexedAt": payloads.iso(post.created_at),
        }
        return {"post": original, "reason": reason}
    parent = None
    if post.is_reply:
        parent_at = post.created_at - timedelta(minutes=5)
        parent = payloads.bluesky_post_view(
            author=other,
            rkey=payloads.make_tid(parent_at, sequence),
            created_at=parent_at,
            likes=1,
            reposts=0,
            replies=1,
            reply_to=None,
        )
    view = payloads.bluesky_post_view(
        author=me,
        rkey=payloads.make_tid(post.created_at, sequence),
        created_at=post.created_at,
        likes=post.likes,
        reposts=post.reposts,
        replies=post.replies,
        reply_to=parent,
    )
    item: dict[str, Any] = {"post": view}
    if parent is not None:
        item["reply"] = {"root": parent, "parent": parent}
    return item
