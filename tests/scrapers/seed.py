"""Put a platform host into a given breaker / pause state the way workers do (real scripts)."""

from __future__ import annotations

import asyncio

from gristmill.scrapers.guard import GuardConfig, HostGuard
from gristmill.settings import Settings


def open_circuit(settings: Settings, host: str, platform: str) -> None:
    """Admit and fail requests to `host` until its circuit opens."""
    guard = HostGuard(GuardConfig.from_settings(settings))

    async def go() -> None:
        for _ in range(settings.scraper_breaker_failure_threshold):
            admission = await guard.admit(host, platform)
            assert admission is not None
            await guard.failed(admission, "HTTP 503")

    asyncio.run(go())


def pause_host(settings: Settings, host: str, platform: str, seconds: float, reason: str) -> None:
    guard = HostGuard(GuardConfig.from_settings(settings))

    async def go() -> None:
        admission = await guard.admit(host, platform)
        assert admission is not None
        await guard.pause(admission, seconds, reason)

    asyncio.run(go())
