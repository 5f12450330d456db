"""SSRF pinning: connections go to the address that passed the check, TLS verifies the name.

Names are answered by a real DNS server (tests/scrapers/dns_server.py) that the scraping
client reaches through SCRAPER_DNS_NAMESERVER; connections are real TCP to 127.0.0.x.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import trustme

from gristmill.scrapers import (
    AccountRef,
    PermanentScrapeError,
    ProfileSnapshot,
    TransientScrapeError,
    get_scraper,
    make_http_client,
)
from gristmill.scrapers.pinning import PinnedTransport
from tests.fakeplatform import FakePlatform
from tests.scrapers.dns_server import ProgrammableDNS

from .helpers import scraper_settings


def _profile(
    dns: ProgrammableDNS, base_url: str, *, allow_private_networks: bool, requests: int = 1
) -> list[ProfileSnapshot]:
    settings = scraper_settings(
        allow_private_networks=allow_private_networks, scraper_dns_nameserver=dns.nameserver
    )
    account = AccountRef("mastodon", "alice@fake.social", base_url)

    async def go() -> list[ProfileSnapshot]:
        async with make_http_client(settings, guarded=False) as client:
            adapter = get_scraper("mastodon", client, allow_private_networks=allow_private_networks)
            return [await adapter.fetch_profile(account) for _ in range(requests)]

    return asyncio.run(go())


def _port(fake: FakePlatform) -> int:
    return int(fake.url.rsplit(":", 1)[1])


def test_hostname_resolving_to_loopback_is_refused_before_connecting(
    fake: FakePlatform, dns: ProgrammableDNS
) -> None:
    fake.add_mastodon_account("alice", followers=1, following=2, statuses=3)
    dns.answer("inside.test", ["127.0.0.1"])
    with pytest.raises(
        PermanentScrapeError,
        match=r"refusing to send request: host inside\.test \(resolves to 127\.0\.0\.1\) is a "
        "loopback address",
    ):
        _profile(dns, f"https://inside.test:{_port(fake)}", allow_private_networks=False)
    assert fake.request_count() == 0


def test_connection_goes_to_the_checked_address_not_a_later_answer(
    fake: FakePlatform, dns: ProgrammableDNS
) -> None:
    # First answer 127.0.0.2 (nobody listens there), every later one 127.0.0.1 (the fake).
    # A client that resolved again to connect would reach the fake; a pinned one cannot.
    fake.add_mastodon_account("alice", followers=1, following=2, statuses=3)
    dns.answer("rebind.test", ["127.0.0.2"], ["127.0.0.1"])
    with pytest.raises(TransientScrapeError, match=r"could not reach rebind\.test"):
        _profile(dns, f"http://rebind.test:{_port(fake)}", allow_private_networks=True)
    assert dns.lookups("rebind.test") == 1
    assert fake.request_count() == 0


def test_pinned_answer_is_used_while_dns_changes_its_mind(
    fake: FakePlatform, dns: ProgrammableDNS
) -> None:
    fake.add_mastodon_account("alice", followers=1, following=2, statuses=3)
    dns.answer("steady.test", ["127.0.0.1"], ["127.0.0.2"])
    profiles = _profile(
        dns, f"http://steady.test:{_port(fake)}", allow_private_networks=True, requests=3
    )
    assert profiles == [ProfileSnapshot(followers=1, following=2, posts=3)] * 3
    assert fake.request_count("alice") == 3
    assert dns.lookups("steady.test") == 1


class _TLSServer:
    """HTTPS on 127.0.0.1 with a certificate for `cert_name`; records the SNI it is sent."""

    def __init__(self, ca: trustme.CA, cert_name: str) -> None:
        self.server_names: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(cert_name).configure_cert(context)
        context.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"ok": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def tls_server() -> Iterator[tuple[_TLSServer, trustme.CA]]:
    ca = trustme.CA()
    server = _TLSServer(ca, "platform.test")
    yield server, ca
    server.close()


def _get(ca: trustme.CA, dns: ProgrammableDNS, url: str) -> httpx.Response:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    transport = PinnedTransport(
        ssl_context=context,
        limits=httpx.Limits(),
        allow_private_networks=True,
        nameserver=dns.nameserver,
    )

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, timeout=5) as client:
            return await client.get(url)

    return asyncio.run(go())


def test_tls_is_verified_for_the_host_name_of_a_pinned_connection(
    tls_server: tuple[_TLSServer, trustme.CA], dns: ProgrammableDNS
) -> None:
    server, ca = tls_server
    dns.answer("platform.test", ["127.0.0.1"])
    response = _get(ca, dns, f"https://platform.test:{server.port}/")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    # The name went out as SNI although the socket was opened to the address.
    assert server.server_names == ["platform.test"]


def test_certificate_for_another_name_is_refused_on_a_pinned_connection(
    tls_server: tuple[_TLSServer, trustme.CA], dns: ProgrammableDNS
) -> None:
    server, ca = tls_server
    dns.answer("impostor.test", ["127.0.0.1"])
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(ca, dns, f"https://impostor.test:{server.port}/")
    assert server.server_names == ["impostor.test"]
