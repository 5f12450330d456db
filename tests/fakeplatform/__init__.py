"""A fake Mastodon + Bluesky HTTP server for tests (real TCP on 127.0.0.1)."""

from tests.fakeplatform.models import (
    FAKE_MASTODON_DOMAIN,
    FAKE_PLATFORM_LIMITS,
    FakeFailure,
    FakePost,
    RequestRecord,
)
from tests.fakeplatform.server import FakePlatform

__all__ = [
    "FAKE_MASTODON_DOMAIN",
    "FAKE_PLATFORM_LIMITS",
    "FakeFailure",
    "FakePlatform",
    "FakePost",
    "RequestRecord",
]
