"""Loading accounts for scrapers and talking to platforms through the adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gristmill.accounts.models import Account
from gristmill.errors import NotFoundError
from gristmill.scrapers import AccountRef, ProfileSnapshot, get_scraper, make_http_client
from gristmill.settings import Settings


@dataclass(frozen=True)
class LoadedAccount:
    id: int
    key: str
    ref: AccountRef


def load_accounts(session: Session, keys: Sequence[str]) -> dict[str, LoadedAccount]:
    rows = session.scalars(select(Account).where(Account.key.in_(keys)))
    return {
        row.key: LoadedAccount(row.id, row.key, AccountRef(row.platform, row.handle, row.base_url))
        for row in rows
    }


def load_account(session: Session, key: str) -> LoadedAccount:
    found = load_accounts(session, [key])
    if key not in found:
        raise NotFoundError(f"account {key!r} no longer exists")
    return found[key]


async def fetch_profile(settings: Settings, ref: AccountRef) -> ProfileSnapshot:
    async with make_http_client(settings) as client:
        scraper = get_scraper(
            ref.platform, client, allow_private_networks=settings.scraper_allow_private_networks
        )
        return await scraper.fetch_profile(ref)


def snapshot_result(
    account_key: str, captured_at: datetime, profile: ProfileSnapshot
) -> dict[str, Any]:
    """The result a finished scrape of one account records on its job."""
    return {
        "account_key": account_key,
        "date": captured_at.date().isoformat(),
        "followers": profile.followers,
        "following": profile.following,
        "posts": profile.posts,
    }
