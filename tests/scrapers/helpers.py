"""Small helpers shared by the scraper tests (sync tests, no pytest-asyncio)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx

from gristmill.scrapers import (
    AccountRef,
    PlatformScraper,
    Post,
    get_scraper,
    make_http_client,
)
from gristmill.settings import Settings

T = TypeVar("T")


def scraper_settings(
    *, timeout: float = 5.0, allow_private_networks: bool = True, **fields: Any
) -> Settings:
    """Settings for a scraping client, independent of the environment and any .env file."""
    return Settings.model_validate(
        {
            "scraper_timeout_seconds": timeout,
            "scraper_allow_private_networks": allow_private_networks,
            **fields,
        }
    )


def run(
    make: Callable[[httpx.AsyncClient], Awaitable[T]],
    *,
    timeout: float = 5.0,
    allow_private_networks: bool = True,
) -> T:
    """Run `make(client)` on a fresh event loop with a fresh unguarded client (no Redis; no
    pytest-asyncio). The fake platform listens on loopback, so private networks are allowed
    for the connections unless a test says otherwise."""
    settings = scraper_settings(timeout=timeout, allow_private_networks=allow_private_networks)

    async def main() -> T:
        async with make_http_client(settings, guarded=False) as client:
            return await make(client)

    return asyncio.run(main())


def scraper(platform: str, client: httpx.AsyncClient) -> PlatformScraper:
    # The fake server listens on 127.0.0.1 over plain http.
    return get_scraper(platform, client, allow_private_networks=True)


async def collect_pages(
    adapter: PlatformScraper, account: AccountRef, since: datetime
) -> list[list[Post]]:
    return [page async for page in adapter.iter_posts_since(account, since)]
