from __future__ import annotations

import httpx
import pytest

from gristmill.scrapers import (
    PLATFORMS,
    USER_AGENT,
    AccountRef,
    BlueskyScraper,
    MastodonScraper,
    get_scraper,
    get_scraper_class,
    make_http_client,
)

from .helpers import run, scraper_settings


def _adapters(client: httpx.AsyncClient) -> tuple[MastodonScraper, BlueskyScraper]:
    return (
        MastodonScraper(client, allow_private_networks=False),
        BlueskyScraper(client, allow_private_networks=False),
    )


@pytest.mark.parametrize(
    "handle", ["alice@example.social", "a_b.c@sub.example.co.uk", "Bob@Mastodon.Social"]
)
def test_valid_mastodon_handles(handle: str) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        _adapters(client)[0].validate_handle(handle)

    run(go)


@pytest.mark.parametrize(
    ("handle", "message"),
    [
        ("alice", "exactly one '@'"),
        ("a@b@example.social", "exactly one '@'"),
        ("@alice@example.social", "must not start with '@'"),
        ("alice@", "both a user and an instance"),
        ("@example.social", "must not start with '@'"),
        ("ali ce@example.social", "may contain only"),
        ("alice@localhost", "not a host name"),
        ("alice@exa mple.social", "not a host name"),
        ("alice@1.2.3.4", "not a host name"),
        ("alice@-bad.social", "not a host name"),
    ],
)
def test_invalid_mastodon_handles(handle: str, message: str) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        _adapters(client)[0].validate_handle(handle)

    with pytest.raises(ValueError, match=message):
        run(go)


@pytest.mark.parametrize(
    "handle",
    ["alice.bsky.social", "example.com", "did:plc:z72i7hdynmk6r22z27h6tvur", "did:web:a.com"],
)
def test_valid_bluesky_handles(handle: str) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        _adapters(client)[1].validate_handle(handle)

    run(go)


@pytest.mark.parametrize(
    ("handle", "message"),
    [
        ("alice", "not a valid handle"),
        ("@alice.bsky.social", "must not start with '@'"),
        ("alice..bsky.social", "not a valid handle"),
        ("-alice.bsky.social", "not a valid handle"),
        ("alice.bsky.123", "not a valid handle"),
        ("alice@bsky.social", "not a valid handle"),
        ("did:plc:", "not a valid DID"),
        ("did:PLC:abc", "not a valid DID"),
    ],
)
def test_invalid_bluesky_handles(handle: str, message: str) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        _adapters(client)[1].validate_handle(handle)

    with pytest.raises(ValueError, match=message):
        run(go)


def test_default_roots_and_base_url_override() -> None:
    async def go(client: httpx.AsyncClient) -> list[str]:
        mastodon, bluesky = _adapters(client)
        return [
            mastodon.default_base_url("alice@Example.Social"),
            mastodon.api_root(AccountRef("mastodon", "a@x.social", "https://api.x.social/")),
            bluesky.default_base_url("alice.bsky.social"),
            bluesky.api_root(AccountRef("bluesky", "alice.bsky.social", None)),
        ]

    assert run(go) == [
        "https://example.social",
        "https://api.x.social",
        "https://public.api.bsky.app",
        "https://public.api.bsky.app",
    ]


def test_registry_returns_adapters_and_names_valid_platforms() -> None:
    async def go(client: httpx.AsyncClient) -> list[str]:
        return [
            get_scraper(name, client, allow_private_networks=False).platform for name in PLATFORMS
        ]

    assert run(go) == ["mastodon", "bluesky"]

    async def unknown(client: httpx.AsyncClient) -> None:
        get_scraper("twitter", client, allow_private_networks=False)

    with pytest.raises(ValueError, match="'twitter'.*mastodon, bluesky"):
        run(unknown)
    with pytest.raises(ValueError, match="'twitter'.*mastodon, bluesky"):
        get_scraper_class("twitter")


def test_handles_can_be_checked_on_the_class_without_a_client() -> None:
    get_scraper_class("mastodon").validate_handle("alice@example.social")
    get_scraper_class("bluesky").validate_handle("alice.bsky.social")
    with pytest.raises(ValueError, match="user@instance"):
        get_scraper_class("mastodon").validate_handle("alice.bsky.social")
    assert get_scraper_class("mastodon").default_base_url("a@b.social") == "https://b.social"


def test_http_client_settings() -> None:
    client = make_http_client(scraper_settings(timeout=7.5), guarded=False)
    assert client.headers["User-Agent"] == USER_AGENT
    assert "Gristmill" in USER_AGENT
    assert client.follow_redirects is False
    assert client.timeout.read == 7.5
    assert client.timeout.connect == 7.5
    assert make_http_client(scraper_settings(timeout=30), guarded=False).timeout.connect == 10.0
