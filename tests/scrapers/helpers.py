"""Small helpers shared by the scraper tests (sync tests, no pytest-asyncio)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import httpx

from gristmill.scrapers import (
    AccountRef,
    PlatformScraper,
    Post,
    get_scraper,
    make_http_client,
)

T = TypeVar("T")


def run(make: Callable[[httpx.AsyncClient], Awaitable[T]], *, timeout: float = 5.0) -> T:
    """Run `make(client)` on a fresh event loop with a fresh client (no pytest-asyncio)."""

    async def main() -> T:
        async with make_http_client(timeout) as client:
            return await make(client)

    return asyncio.run(main())


def scraper(platform: str, client: httpx.AsyncClient) -> PlatformScraper:
    # The fake server listens on 127.0.0.1 over plain http.
    return get_scraper(platform, client, allow_private_networks=True)


async def collect_pages(
    adapter: PlatformScraper, account: AccountRef, since: datetime
) -> list[list[Post]]:
    return [page async for page in adapter.iter_posts_since(account, since)]
