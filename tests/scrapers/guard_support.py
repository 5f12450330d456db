"""Scraping through guarded clients against the fake platform and the test run's Redis."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Any

import httpx
import redis

from gristmill.scrapers import AccountRef, ProfileSnapshot, get_scraper, make_http_client
from gristmill.scrapers.guard import GuardConfig, GuardedTransport, HostGuard
from gristmill.scrapers.hoststate import HostState, read_host_states
from gristmill.scrapers.pinning import PinnedTransport
from gristmill.settings import Settings

from .helpers import scraper_settings


def guard_settings(redis_url: str, **fields: Any) -> Settings:
    """Scraper settings with this Redis and, unless given, no limits worth noticing."""
    defaults: dict[str, Any] = {
        "redis_url": redis_url,
        "scraper_mastodon_requests_per_second": 1000.0,
        "scraper_mastodon_burst": 1000,
        "scraper_bluesky_requests_per_second": 1000.0,
        "scraper_bluesky_burst": 1000,
    }
    return scraper_settings(**{**defaults, **fields})


def fetch_all(
    settings: Settings, accounts: Sequence[AccountRef], *, workers: int = 1
) -> list[ProfileSnapshot | BaseException]:
    """Fetch the profiles concurrently, spread over `workers` clients each with its own guard
    object (as separate worker processes would have), on one new event loop."""
    guards = [HostGuard(GuardConfig.from_settings(settings)) for _ in range(workers)]

    async def go() -> list[ProfileSnapshot | BaseException]:
        if workers == 1:
            clients = [make_http_client(settings)]
        else:
            clients = [_client(settings, guard) for guard in guards]
        try:
            return await asyncio.gather(
                *(
                    get_scraper(
                        account.platform, clients[index % workers], allow_private_networks=True
                    ).fetch_profile(account)
                    for index, account in enumerate(accounts)
                ),
                return_exceptions=True,
            )
        finally:
            for client in clients:
                await client.aclose()

    return asyncio.run(go())


def _client(settings: Settings, guard: HostGuard) -> httpx.AsyncClient:
    # What make_http_client builds, with a guard object of its own.
    pinned = PinnedTransport(
        ssl_context=ssl.create_default_context(),
        limits=httpx.Limits(),
        allow_private_networks=True,
        nameserver=None,
    )
    return httpx.AsyncClient(
        transport=GuardedTransport(pinned, guard), timeout=settings.scraper_timeout_seconds
    )


def fetch_one(settings: Settings, account: AccountRef) -> ProfileSnapshot:
    [outcome] = fetch_all(settings, [account])
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def host_state(settings: Settings, host: str) -> HostState:
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        [state] = [s for s in read_host_states(client) if s.host == host]
    finally:
        client.close()
    return state
