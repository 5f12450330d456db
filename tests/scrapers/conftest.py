"""Fixtures for scraper tests: one fake platform server per session, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gristmill.scrapers.ssrf import clear_resolution_cache
from tests.fakeplatform import FakePlatform


@pytest.fixture
def fake(fake_platform_server: FakePlatform) -> Iterator[FakePlatform]:
    fake_platform_server.reset()
    clear_resolution_cache()
    yield fake_platform_server
    fake_platform_server.reset()
