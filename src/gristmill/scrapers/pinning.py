"""Connections to exactly the addresses that passed the SSRF check.

httpx hands host names to httpcore, which would resolve them again when it connects. This
network backend resolves once, refuses the host unless every address is allowed, and opens
the TCP connection to one of those very addresses. TLS is started afterwards by httpcore with
the host name as SNI and for certificate verification, so pinning the address changes nothing
about who the peer must prove to be.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpcore
import httpx

from gristmill.scrapers.ssrf import UnsafeBaseURLError, checked_addresses

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check, then connect to a checked address (first that answers)."""

    def __init__(self, *, allow_private_networks: bool, nameserver: str | None) -> None:
        self._allow_private_networks = allow_private_networks
        self._nameserver = nameserver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await checked_addresses(
            host,
            port,
            allow_private_networks=self._allow_private_networks,
            nameserver=self._nameserver,
        )
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # checked_addresses never returns an empty tuple
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeBaseURLError("unix sockets are never a scraping target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (same request/response and error mapping), with a connection
    pool whose every connection goes through PinnedNetworkBackend."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        limits: httpx.Limits,
        allow_private_networks: bool,
        nameserver: str | None,
    ) -> None:
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # httpx takes no network backend, so the pool it built is swapped for one that has
        # ours; tests/scrapers/test_pinning.py fails if an httpx upgrade changes this.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedNetworkBackend(
                allow_private_networks=allow_private_networks, nameserver=nameserver
            ),
        )
