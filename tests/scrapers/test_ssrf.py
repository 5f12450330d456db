from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gristmill.scrapers import (
    AccountRef,
    PermanentScrapeError,
    TransientScrapeError,
    UnresolvableHostError,
    UnsafeBaseURLError,
    check_resolved_host,
    get_scraper,
    validate_base_url,
)
from gristmill.scrapers.ssrf import clear_resolution_cache

from .helpers import run

PUBLIC = "93.184.215.14"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://{PUBLIC}", f"https://{PUBLIC}"),
        (f"https://{PUBLIC}/", f"https://{PUBLIC}"),
        (f"HTTPS://{PUBLIC}:443/api/", f"https://{PUBLIC}/api"),
        (f"https://{PUBLIC}:8443", f"https://{PUBLIC}:8443"),
    ],
)
def test_public_https_ip_literal_is_allowed_and_normalised(url: str, expected: str) -> None:
    assert validate_base_url(url, allow_private_networks=False) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"http://{PUBLIC}", "plain http:// is not allowed"),
        (f"ftp://{PUBLIC}", "scheme 'ftp' is not allowed"),
        ("https://127.0.0.1", "loopback"),
        ("https://10.1.2.3", "private-network"),
        ("https://192.168.0.10:8443", "private-network"),
        ("https://169.254.169.254", "cloud metadata"),
        ("https://169.254.1.1", "link-local"),
        ("https://[::1]", "loopback"),
        ("https://[fd00:ec2::254]", "cloud metadata"),
        ("https://[::ffff:127.0.0.1]", "loopback"),
        ("https://0.0.0.0", "unspecified"),
        ("https://224.0.0.1", "multicast"),
        ("https://100.64.0.1", "not a public internet address"),
        (f"https://user:secret@{PUBLIC}", "username or password"),
        (f"https://user@{PUBLIC}", "username or password"),
        (f"https://{PUBLIC}/?x=1", "query string"),
        ("https://", "has no host"),
        (f"https://{PUBLIC}:99999", "not a valid URL"),
    ],
)
def test_unsafe_urls_are_rejected_with_reason(url: str, message: str) -> None:
    with pytest.raises(UnsafeBaseURLError, match=message):
        validate_base_url(url, allow_private_networks=False)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://10.1.2.3", "https://[::1]", "http://192.168.1.1/"]
)
def test_private_networks_allowed_when_enabled(url: str) -> None:
    assert validate_base_url(url, allow_private_networks=True) == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://169.254.169.254", "cloud metadata"),
        ("http://user:pw@127.0.0.1", "username or password"),
        ("file:///etc/passwd", "scheme 'file'"),
    ],
)
def test_some_things_are_refused_even_when_private_allowed(url: str, message: str) -> None:
    with pytest.raises(UnsafeBaseURLError, match=message):
        validate_base_url(url, allow_private_networks=True)


class FakeDNS:
    """Replaces socket.getaddrinfo for names under .test; counts lookups."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups = 0
        self._real = real

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not host.endswith(".test"):
            return self._real(host, port, *args, **kwargs)
        self.lookups += 1
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, 443),
            )
            for ip in self.answers[host]
        ]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDNS]:
    fake = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    clear_resolution_cache()
    yield fake
    clear_resolution_cache()


def test_hostname_with_any_private_address_is_rejected(dns: FakeDNS) -> None:
    dns.answers["mixed.test"] = [PUBLIC, "10.0.0.7"]
    with pytest.raises(UnsafeBaseURLError, match=r"mixed\.test \(resolves to 10\.0\.0\.7\)"):
        validate_base_url("https://mixed.test", allow_private_networks=False)


def test_unresolvable_host_is_rejected(dns: FakeDNS) -> None:
    with pytest.raises(UnresolvableHostError, match="does not resolve"):
        validate_base_url("https://nowhere.test", allow_private_networks=False)


def test_resolution_is_cached_then_rebinding_is_caught(dns: FakeDNS) -> None:
    dns.answers["rebind.test"] = [PUBLIC]
    url = "https://rebind.test/api/v1/accounts/lookup?acct=alice"
    assert validate_base_url("https://rebind.test", allow_private_networks=False)
    check_resolved_host(url, False)
    check_resolved_host(url, False)
    assert dns.lookups == 1
    dns.answers["rebind.test"] = ["127.0.0.1"]
    clear_resolution_cache()  # what the 60 s expiry does in production
    with pytest.raises(UnsafeBaseURLError, match="loopback"):
        check_resolved_host(url, False)


def test_scraper_refuses_rebound_host_and_retries_dns_failures(dns: FakeDNS) -> None:
    dns.answers["rebound.test"] = ["10.9.8.7"]

    async def fetch(client: httpx.AsyncClient, host: str) -> None:
        adapter = get_scraper("mastodon", client, allow_private_networks=False)
        await adapter.fetch_profile(AccountRef("mastodon", "a@x.social", f"https://{host}"))

    with pytest.raises(PermanentScrapeError, match="refusing to send request.*private"):
        run(lambda client: fetch(client, "rebound.test"))
    with pytest.raises(TransientScrapeError, match="does not resolve"):
        run(lambda client: fetch(client, "gone.test"))
