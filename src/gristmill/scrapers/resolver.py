"""Host name -> addresses, through the system resolver or one configured nameserver.

The SSRF check and the connection both take their addresses from here, so whatever answer
passed the check is the one connected to. Answers are cached briefly so that the many
connections of a bulk scrape do not each cost a lookup.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from typing import TypeVar

import dns.asyncresolver
import dns.exception
import dns.resolver

from gristmill.settings import parse_nameserver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_R = TypeVar("_R", bound=dns.resolver.BaseResolver)

RESOLUTION_CACHE_SECONDS = 60.0
LOOKUP_TIMEOUT_SECONDS = 5.0


class ResolutionError(OSError):
    """The name has no usable answer (no such name, no address, or the lookup failed)."""


def literal_address(host: str) -> IPAddress | None:
    """The address if `host` is an IP literal (IPv6 without brackets), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _from_sockaddrs(infos: list[tuple[object, ...]]) -> tuple[IPAddress, ...]:
    addresses: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        if isinstance(sockaddr, tuple) and sockaddr and isinstance(sockaddr[0], str):
            # Drop an IPv6 zone ("fe80::1%eth0") before parsing.
            address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
    return tuple(addresses)


class Resolver:
    """Resolves host names (A and AAAA), caching each answer for RESOLUTION_CACHE_SECONDS.

    `nameserver` ("ip" or "ip:port") sends every query to that server (dnspython); None uses
    the system resolver (getaddrinfo: /etc/hosts, resolv.conf, the cluster DNS).
    """

    def __init__(self, nameserver: str | None = None) -> None:
        self.nameserver = nameserver
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, tuple[IPAddress, ...]]] = {}
        self._server: tuple[str, int] | None = parse_nameserver(nameserver) if nameserver else None

    def _configure(self, resolver: _R) -> _R:
        assert self._server is not None
        resolver.nameservers = [self._server[0]]
        resolver.port = self._server[1]
        resolver.lifetime = LOOKUP_TIMEOUT_SECONDS
        return resolver

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def _cached(self, host: str) -> tuple[IPAddress, ...] | None:
        with self._lock:
            entry = self._cache.get(host)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def _store(self, host: str, addresses: tuple[IPAddress, ...]) -> tuple[IPAddress, ...]:
        if not addresses:
            raise ResolutionError(f"no address records for {host}")
        with self._lock:
            self._cache[host] = (time.monotonic() + RESOLUTION_CACHE_SECONDS, addresses)
        return addresses

    def resolve(self, host: str, port: int) -> tuple[IPAddress, ...]:
        """Blocking lookup (the api checks a base URL with it). Raises ResolutionError."""
        literal = literal_address(host)
        if literal is not None:
            return (literal,)
        key = host.lower()
        cached = self._cached(key)
        if cached is not None:
            return cached
        if self._server is None:
            try:
                infos = socket.getaddrinfo(key, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ResolutionError(str(exc)) from exc
            return self._store(key, _from_sockaddrs(list(infos)))
        resolver = self._configure(dns.resolver.Resolver(configure=False))
        found: list[IPAddress] = []
        for record_type in ("A", "AAAA"):
            try:
                answer = resolver.resolve(key, record_type, search=False)
            except dns.resolver.NoAnswer:
                continue
            except dns.resolver.NXDOMAIN as exc:
                raise ResolutionError(str(exc)) from exc
            except dns.exception.DNSException as exc:
                raise ResolutionError(f"lookup of {host} failed: {exc}") from exc
            found.extend(ipaddress.ip_address(record.to_text()) for record in answer)
        return self._store(key, tuple(dict.fromkeys(found)))

    async def resolve_async(self, host: str, port: int) -> tuple[IPAddress, ...]:
        """The same lookup without blocking the event loop. Raises ResolutionError."""
        literal = literal_address(host)
        if literal is not None:
            return (literal,)
        key = host.lower()
        cached = self._cached(key)
        if cached is not None:
            return cached
        if self._server is None:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(key, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ResolutionError(str(exc)) from exc
            return self._store(key, _from_sockaddrs(list(infos)))
        resolver = self._configure(dns.asyncresolver.Resolver(configure=False))
        found: list[IPAddress] = []
        for record_type in ("A", "AAAA"):
            try:
                answer = await resolver.resolve(key, record_type, search=False)
            except dns.resolver.NoAnswer:
                continue
            except dns.resolver.NXDOMAIN as exc:
                raise ResolutionError(str(exc)) from exc
            except dns.exception.DNSException as exc:
                raise ResolutionError(f"lookup of {host} failed: {exc}") from exc
            found.extend(ipaddress.ip_address(record.to_text()) for record in answer)
        return self._store(key, tuple(dict.fromkeys(found)))


_resolvers_lock = threading.Lock()
_resolvers: dict[str | None, Resolver] = {}


def get_resolver(nameserver: str | None = None) -> Resolver:
    """The process-wide resolver (and its cache) for this nameserver (None: the system's)."""
    with _resolvers_lock:
        resolver = _resolvers.get(nameserver)
        if resolver is None:
            resolver = _resolvers[nameserver] = Resolver(nameserver)
        return resolver


def clear_resolution_caches() -> None:
    """Forget every cached answer (tests, or after a known DNS change)."""
    with _resolvers_lock:
        resolvers = list(_resolvers.values())
    for resolver in resolvers:
        resolver.clear()
