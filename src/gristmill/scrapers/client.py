"""The HTTP client every scraper uses: pinned SSRF-checked connections, guarded hosts."""

from __future__ import annotations

import functools
import ssl

import certifi
import httpx

from gristmill.scrapers.base import USER_AGENT
from gristmill.scrapers.guard import GuardedTransport, host_guard
from gristmill.scrapers.pinning import PinnedTransport
from gristmill.settings import Settings


def make_http_client(settings: Settings, *, guarded: bool = True) -> httpx.AsyncClient:
    """An AsyncClient for scraping many accounts concurrently, configured from `settings`.

    Every connection goes to an address that passed the SSRF check for
    SCRAPER_ALLOW_PRIVATE_NETWORKS (looked up through SCRAPER_DNS_NAMESERVER if set).
    Requests the scrapers make are guarded by the shared rate limits, pauses and circuit
    breakers in REDIS_URL unless `guarded` is False. Redirects are not followed here; the
    scrapers' transport follows a few, checking every hop. The client may be reused for
    many jobs; its Redis client follows the running event loop.
    """
    timeout_seconds = settings.scraper_timeout_seconds
    limits = httpx.Limits(
        # ~100+ concurrent requests spread over many instances, with some reuse for the hosts
        # we page through repeatedly (bsky.app, big Mastodon instances).
        max_connections=256,
        max_keepalive_connections=64,
        keepalive_expiry=30.0,
    )
    pinned = PinnedTransport(
        ssl_context=tls_context(),
        limits=limits,
        allow_private_networks=settings.scraper_allow_private_networks,
        nameserver=settings.scraper_dns_nameserver,
    )
    return httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        # Connecting should be quick; a slow connect usually means a dead host, so it gets at
        # most the overall budget but never more than 10 s.
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0)),
        transport=GuardedTransport(pinned, host_guard(settings) if guarded else None),
        follow_redirects=False,
        trust_env=False,
    )


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's TLS settings. Loading the CA bundle costs ~40 ms: clients are made per
    event loop, the context once (workers load it before forking, so a pool process that
    replaces another one does not pay it again)."""
    return ssl.create_default_context(cafile=certifi.where())
