from __future__ import annotations

import pytest

from gristmill.scrapers import (
    UnresolvableHostError,
    UnsafeBaseURLError,
    check_request_url,
    validate_base_url,
)
from gristmill.scrapers.ssrf import clear_resolution_cache
from tests.scrapers.dns_server import ProgrammableDNS

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


def test_hostname_with_any_private_address_is_rejected(dns: ProgrammableDNS) -> None:
    dns.answer("mixed.test", [PUBLIC, "10.0.0.7"])
    with pytest.raises(UnsafeBaseURLError, match=r"mixed\.test \(resolves to 10\.0\.0\.7\)"):
        validate_base_url(
            "https://mixed.test", allow_private_networks=False, nameserver=dns.nameserver
        )


def test_hostname_with_a_loopback_ipv6_address_is_rejected(dns: ProgrammableDNS) -> None:
    dns.answer("six.test", [PUBLIC, "::1"])
    with pytest.raises(UnsafeBaseURLError, match="loopback"):
        validate_base_url(
            "https://six.test", allow_private_networks=False, nameserver=dns.nameserver
        )


def test_unresolvable_host_is_rejected(dns: ProgrammableDNS) -> None:
    with pytest.raises(UnresolvableHostError, match="does not resolve"):
        validate_base_url(
            "https://nowhere.test", allow_private_networks=False, nameserver=dns.nameserver
        )


def test_resolution_is_cached_then_a_changed_answer_is_checked_again(
    dns: ProgrammableDNS,
) -> None:
    dns.answer("rebind.test", [PUBLIC], ["127.0.0.1"])
    assert validate_base_url(
        "https://rebind.test", allow_private_networks=False, nameserver=dns.nameserver
    )
    assert validate_base_url(
        "https://rebind.test", allow_private_networks=False, nameserver=dns.nameserver
    )
    assert dns.lookups("rebind.test") == 1
    clear_resolution_cache()  # what the 60 s expiry does in production
    with pytest.raises(UnsafeBaseURLError, match="loopback"):
        validate_base_url(
            "https://rebind.test", allow_private_networks=False, nameserver=dns.nameserver
        )


def test_request_urls_are_checked_without_dns() -> None:
    check_request_url("https://any.test/api?x=1", allow_private_networks=False)
    with pytest.raises(UnsafeBaseURLError, match="cloud metadata"):
        check_request_url("http://169.254.169.254/latest", allow_private_networks=True)
    with pytest.raises(UnsafeBaseURLError, match="plain http"):
        check_request_url("http://any.test/api", allow_private_networks=False)
