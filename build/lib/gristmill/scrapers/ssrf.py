"""Keep scrapers from being pointed at internal services (SSRF).

An account's `base_url` comes from a user, so before it is stored and again before every
request we check where it leads. The second check catches DNS records changed after
registration; resolutions are cached briefly so hot paths pay nothing.

Known gap: httpx resolves the host again when it connects, so a record with a tiny TTL that
answers differently to the check and to the connection (fast DNS rebinding) is not caught.
Closing it needs a transport that connects to the address that was checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLUTION_CACHE_SECONDS = 60.0

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


_cache_lock = threading.Lock()
_cache: dict[str, tuple[float, tuple[IPAddress, ...]]] = {}


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


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


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
    target: _Target, addresses: tuple[IPAddress, ...], *, allow_private_networks: bool
) -> None:
    for address in addresses:
        reason = _blocked_reason(address, allow_private_networks=allow_private_networks)
        if reason is not None:
            shown = "" if str(address) == target.host else f" (resolves to {address})"
            raise UnsafeBaseURLError(f"host {target.host}{shown} is {reason}")


def _cached(host: str) -> tuple[IPAddress, ...] | None:
    with _cache_lock:
        entry = _cache.get(host)
    if entry is None or entry[0] < time.monotonic():
        return None
    return entry[1]


def _store(host: str, infos: list[tuple[object, ...]]) -> tuple[IPAddress, ...]:
    addresses: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        if isinstance(sockaddr, tuple) and sockaddr and isinstance(sockaddr[0], str):
            # Drop an IPv6 zone ("fe80::1%eth0") before parsing.
            address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
    result = tuple(addresses)
    with _cache_lock:
        _cache[host] = (time.monotonic() + RESOLUTION_CACHE_SECONDS, result)
    return result


def _unresolvable(target: _Target, exc: OSError) -> UnresolvableHostError:
    return UnresolvableHostError(f"host {target.host} does not resolve: {exc}")


def _resolve(target: _Target) -> tuple[IPAddress, ...]:
    literal = _literal(target.host)
    if literal is not None:
        return (literal,)
    cached = _cached(target.host)
    if cached is not None:
        return cached
    try:
        infos = socket.getaddrinfo(target.host, target.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _unresolvable(target, exc) from exc
    return _store(target.host, list(infos))


async def _resolve_async(target: _Target) -> tuple[IPAddress, ...]:
    literal = _literal(target.host)
    if literal is not None:
        return (literal,)
    cached = _cached(target.host)
    if cached is not None:
        return cached
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _unresolvable(target, exc) from exc
    return _store(target.host, list(infos))


def validate_base_url(url: str, *, allow_private_networks: bool) -> str:
    """Return `url` normalised (lower-case scheme and host, no trailing slash) if safe.

    Unless `allow_private_networks`, the scheme must be https and every address the host
    resolves to must be a public internet address. Userinfo, non-http(s) schemes and
    cloud metadata addresses are always refused. Raises UnsafeBaseURLError saying what
    is wrong.
    """
    target = _parse(url, allow_private_networks=allow_private_networks)
    addresses = _resolve(target)
    _check_addresses(target, addresses, allow_private_networks=allow_private_networks)
    return target.normalised


def check_resolved_host(url: str, allow_private_networks: bool) -> None:
    """Re-check a request URL (query allowed) just before sending it; same rules.

    Raises UnresolvableHostError when DNS has no answer, UnsafeBaseURLError when unsafe.
    """
    target = _parse(url, allow_private_networks=allow_private_networks, base=False)
    addresses = _resolve(target)
    _check_addresses(target, addresses, allow_private_networks=allow_private_networks)


async def check_resolved_host_async(url: str, allow_private_networks: bool) -> None:
    """`check_resolved_host` without blocking the event loop on a DNS lookup."""
    target = _parse(url, allow_private_networks=allow_private_networks, base=False)
    addresses = await _resolve_async(target)
    _check_addresses(target, addresses, allow_private_networks=allow_private_networks)


def clear_resolution_cache() -> None:
    """Forget cached DNS answers (tests, or after a known DNS change)."""
    with _cache_lock:
        _cache.clear()
