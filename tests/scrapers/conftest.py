"""Fixtures for scraper tests: the fake platform and a programmable DNS server, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gristmill.scrapers.ssrf import clear_resolution_cache
from tests.fakeplatform import FakePlatform
from tests.scrapers.dns_server import ProgrammableDNS


@pytest.fixture
def fake(fake_platform_server: FakePlatform) -> Iterator[FakePlatform]:
    fake_platform_server.reset()
    clear_resolution_cache()
    yield fake_platform_server
    fake_platform_server.reset()


@pytest.fixture(scope="session")
def dns_server() -> Iterator[ProgrammableDNS]:
    server = ProgrammableDNS()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def dns(dns_server: ProgrammableDNS) -> Iterator[ProgrammableDNS]:
    """A real DNS server; point SCRAPER_DNS_NAMESERVER (or `nameserver=`) at `dns.nameserver`."""
    dns_server.reset()
    clear_resolution_cache()
    yield dns_server
    clear_resolution_cache()
