"""Keep scrapers from being pointed at internal services (SSRF).

An account's `base_url` comes from a user, so it is checked when it is stored, and every
connection a scraper opens is checked again where it is made: the pinned network backend
(`scrapers.pinning`) resolves the host, refuses it unless every address is allowed, and
connects to one of exactly those addresses, while TLS still verifies the certificate for the
host name. A DNS answer that changes between a check and the connection (rebinding) can
therefore not lead anywhere that was not checked. Redirects are followed only through the
same checks (see `scrapers.transport`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from gristmill.scrapers.resolver import (
    IPAddress,
    ResolutionError,
    clear_resolution_caches,
    get_resolver,
    literal_address,
)

# Cloud instance-metadata endpoints hand out credentials; they are refused even when
# private networks are allowed, because no platform API ever lives there.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class UnsafeBaseURLError(ValueError):
    """The URL may not be used as a scraping target; the message says why."""


class UnresolvableHostError(UnsafeBaseURLError):
    """The host has no DNS answer; at request time usually a passing DNS problem."""


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int | None
    normalised: str


def _parse(url: str, *, allow_private_networks: bool, base: bool = True) -> _Target:
    try:
        parts: SplitResult = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeBaseURLError(f"{url!r} is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeBaseURLError(
            f"URL scheme {parts.scheme or '(none)'!r} is not allowed; use https://"
        )
    if scheme == "http" and not allow_private_networks:
        raise UnsafeBaseURLError("plain http:// is not allowed; use https://")
    if "@" in parts.netloc:
        raise UnsafeBaseURLError("URLs with a username or password are not allowed")
    host = parts.hostname
    if not host:
        raise UnsafeBaseURLError(f"URL {url!r} has no host")
    if base and (parts.query or parts.fragment):
        raise UnsafeBaseURLError("base URL must not have a query string or fragment")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != (443 if scheme == "https" else 80):
        netloc = f"{netloc}:{port}"
    normalised = f"{scheme}://{netloc}{parts.path.rstrip('/')}"
    return _Target(scheme=scheme, host=host, port=port, normalised=normalised)


def _blocked_reason(address: IPAddress, *, allow_private_networks: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 reaches 127.0.0.1, so judge the embedded IPv4 address.
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private_networks:
        return None
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private-network address"),
        (address.is_reserved, "a reserved address"),
        # Catches the rest, e.g. carrier-grade NAT 100.64.0.0/10, which is not
        # "private".
        (not address.is_global, "not a public internet address"),
    )
    for hit, reason in checks:
        if hit:
            return reason
    return None


def _check_addresses(
    host: str, addresses: tuple[IPAddress, ...], *, allow_private_networks: bool
) -> None:
    for address in addresses:
        reason = _blocked_reason(address, allow_private_networks=allow_private_networks)
        if reason is not None:
            shown = "" if str(address) == host.strip("[]") else f" (resolves to {address})"
            raise UnsafeBaseURLError(f"host {host}{shown} is {reason}")


def _unresolvable(host: str, exc: ResolutionError) -> UnresolvableHostError:
    return UnresolvableHostError(f"host {host} does not resolve: {exc}")


def validate_base_url(
    url: str, *, allow_private_networks: bool, nameserver: str | None = None
) -> str:
    """Return `url` normalised (lower-case scheme and host, no trailing slash) if safe.

    Unless `allow_private_networks`, the scheme must be https and every address the host
    resolves to (through `nameserver`, or the system resolver) must be a public internet
    address. Userinfo, non-http(s) schemes and cloud metadata addresses are always refused.
    Raises UnsafeBaseURLError saying what is wrong.
    """
    target = _parse(url, allow_private_networks=allow_private_networks)
    try:
        addresses = get_resolver(nameserver).resolve(target.host, target.port or 443)
    except ResolutionError as exc:
        raise _unresolvable(target.host, exc) from exc
    _check_addresses(target.host, addresses, allow_private_networks=allow_private_networks)
    return target.normalised


def check_request_url(url: str, *, allow_private_networks: bool) -> None:
    """The checks a request URL (query allowed) gets before it is sent, without DNS: scheme,
    userinfo, and a literal address. The host's addresses are checked where the connection
    is made. Raises UnsafeBaseURLError."""
    target = _parse(url, allow_private_networks=allow_private_networks, base=False)
    literal = literal_address(target.host)
    if literal is not None:
        _check_addresses(target.host, (literal,), allow_private_networks=allow_private_networks)


async def checked_addresses(
    host: str, port: int, *, allow_private_networks: bool, nameserver: str | None = None
) -> tuple[IPAddress, ...]:
    """Every address of `host`, if all of them may be connected to; the connection must use
    one of these. Raises UnresolvableHostError (no answer) or UnsafeBaseURLError."""
    try:
        addresses = await get_resolver(nameserver).resolve_async(host, port)
    except ResolutionError as exc:
        raise _unresolvable(host, exc) from exc
    _check_addresses(host, addresses, allow_private_networks=allow_private_networks)
    return addresses


def clear_resolution_cache() -> None:
    """Forget cached DNS answers (tests, or after a known DNS change)."""
    clear_resolution_caches()
