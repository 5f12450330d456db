"""Look up the adapter for a platform name."""

from __future__ import annotations

import httpx

from gristmill.scrapers.base import PLATFORMS, PlatformScraper
from gristmill.scrapers.bluesky import BlueskyScraper
from gristmill.scrapers.mastodon import MastodonScraper

_SCRAPERS: dict[str, type[PlatformScraper]] = {
    MastodonScraper.platform: MastodonScraper,
    BlueskyScraper.platform: BlueskyScraper,
}
# PLATFORMS is declared in base so importers of the interface need not load the
# adapters.
assert tuple(_SCRAPERS) == PLATFORMS


def get_scraper_class(platform: str) -> type[PlatformScraper]:
    """The adapter class for `platform` (for class-level checks such as `validate_handle`);
    raises ValueError naming the valid platforms."""
    try:
        return _SCRAPERS[platform]
    except KeyError:
        raise ValueError(
            f"unknown platform {platform!r}; valid platforms: {', '.join(PLATFORMS)}"
        ) from None


def get_scraper(
    platform: str, client: httpx.AsyncClient, *, allow_private_networks: bool
) -> PlatformScraper:
    """The adapter for `platform`; raises ValueError naming the valid platforms."""
    scraper_class = get_scraper_class(platform)
    return scraper_class(client, allow_private_networks=allow_private_networks)
