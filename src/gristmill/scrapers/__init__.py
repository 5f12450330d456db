"""Platform adapters (Mastodon, Bluesky) behind one small async interface."""

from gristmill.scrapers.activity import aggregate_daily, window_start
from gristmill.scrapers.base import (
    PLATFORMS,
    USER_AGENT,
    AccountNotFoundError,
    AccountRef,
    DailyActivity,
    PermanentScrapeError,
    PlatformDeferredError,
    PlatformScraper,
    Post,
    ProfileSnapshot,
    ScrapeError,
    TransientScrapeError,
)
from gristmill.scrapers.bluesky import BlueskyScraper
from gristmill.scrapers.client import make_http_client
from gristmill.scrapers.mastodon import MastodonScraper
from gristmill.scrapers.ratelimit import parse_retry_after
from gristmill.scrapers.registry import get_scraper, get_scraper_class
from gristmill.scrapers.ssrf import (
    UnresolvableHostError,
    UnsafeBaseURLError,
    check_request_url,
    validate_base_url,
)

__all__ = [
    "PLATFORMS",
    "USER_AGENT",
    "AccountNotFoundError",
    "AccountRef",
    "BlueskyScraper",
    "DailyActivity",
    "MastodonScraper",
    "PermanentScrapeError",
    "PlatformDeferredError",
    "PlatformScraper",
    "Post",
    "ProfileSnapshot",
    "ScrapeError",
    "TransientScrapeError",
    "UnresolvableHostError",
    "UnsafeBaseURLError",
    "aggregate_daily",
    "check_request_url",
    "get_scraper",
    "get_scraper_class",
    "make_http_client",
    "parse_retry_after",
    "validate_base_url",
    "window_start",
]
