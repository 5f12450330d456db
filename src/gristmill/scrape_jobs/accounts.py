"""Loading the accounts a scraping job works on, and the result of scraping one account."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gristmill.accounts.models import Account
from gristmill.errors import NotFoundError
from gristmill.scrape_jobs.clients import http_client
from gristmill.scrapers import AccountRef, PlatformScraper, ProfileSnapshot, get_scraper
from gristmill.settings import Settings


@dataclass(frozen=True)
class LoadedAccount:
    id: int
    key: str
    ref: AccountRef


_ACCOUNTS = select(
    Account.id, Account.key, Account.platform, Account.handle, Account.base_url
).where(Account.key.in_(bindparam("keys", expanding=True)))


def load_accounts(session: Session, keys: Sequence[str]) -> dict[str, LoadedAccount]:
    rows = session.connection().execute(_ACCOUNTS, {"keys": list(keys)})
    return {
        row.key: LoadedAccount(row.id, row.key, AccountRef(row.platform, row.handle, row.base_url))
        for row in rows
    }


def load_account(session: Session, params: dict[str, Any]) -> dict[str, Any]:
    """The loader of one-account jobs: runs in the claim's transaction, so claiming the job and
    reading its account cost one round of commits."""
    key = str(params["account_key"])
    found = load_accounts(session, [key])
    if key not in found:
        raise NotFoundError(f"account {key!r} no longer exists")
    return {"account": found[key]}


def scraper_for(settings: Settings, account: LoadedAccount) -> PlatformScraper:
    """The account's platform adapter on the process's shared HTTP client."""
    return get_scraper(
        account.ref.platform,
        http_client(settings),
        allow_private_networks=settings.scraper_allow_private_networks,
    )


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
