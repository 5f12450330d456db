"""Platform protection shared by every worker: rate limits, host-wide pauses, circuit breakers.

`GuardedTransport` wraps the HTTP transport of a scraping client. Before a request it asks
Redis (one Lua call, `hoststate.ADMIT`) whether the host may be called now: a wait of up to
SCRAPER_MAX_THROTTLE_WAIT_SECONDS is slept here; anything longer (an open circuit, a pause
the platform asked for, a rate limit backlog) raises PlatformDeferredError, which the job
engine turns into "pending again after this delay" without spending a retry. After the
request it records failures (5xx, timeouts, connection errors) for the breaker and turns
Retry-After / RateLimit headers into a pause for every worker.

If Redis cannot be reached the guard steps aside (the request goes out unguarded, a counter
and a rate-limited warning say so): losing the limiter must not stop scraping.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from dataclasses import dataclass

import httpx
import redis
import redis.asyncio
from prometheus_client import Counter, Histogram
from redis.commands.core import AsyncScript

from gristmill.scrapers.base import PLATFORMS, PlatformDeferredError
from gristmill.scrapers.hoststate import (
    ADMIT,
    HOST_IDLE_TTL_SECONDS,
    HOSTS_KEY,
    OPEN,
    PAUSE,
    REPORT,
    host_key,
)
from gristmill.scrapers.ratelimit import PlatformLimits, pause_from_response, platform_limits
from gristmill.settings import Settings

logger = logging.getLogger(__name__)

# Request extension naming the platform a request is made for; requests without it (none
# of the scrapers' own) are not guarded.
PLATFORM_EXTENSION = "gristmill.platform"
REDIS_TIMEOUT_SECONDS = 2.0
REDIS_CONNECTIONS = 32
# Waiting for one of those connections is still better than going unguarded; only a Redis
# that does not answer (REDIS_TIMEOUT_SECONDS per call) lets requests through unguarded.
POOL_WAIT_SECONDS = 10.0
_WARN_EVERY_SECONDS = 30.0
_MAX_FAILURE_TEXT = 200

DEFERRED = Counter(
    "gristmill_platform_requests_deferred",
    "Requests not sent because their host must wait; their jobs were deferred.",
    ["platform", "reason"],
)
THROTTLE_WAIT = Histogram(
    "gristmill_platform_throttle_wait_seconds",
    "Time a request waited in the worker for its host's shared rate limit or pause.",
    ["platform"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
CIRCUIT_OPENED = Counter(
    "gristmill_platform_circuit_opened",
    "Times a host's circuit breaker opened (a burst of failures, or a failed probe).",
    ["platform"],
)
PAUSES = Counter(
    "gristmill_platform_pauses",
    "Answers that paused their host for every worker (Retry-After, exhausted RateLimit).",
    ["platform", "reason"],
)
# Every metric here has labels, so none creates a value at import: in a prefork worker the
# multiprocess directory may not exist yet then.
GUARD_UNAVAILABLE = Counter(
    "gristmill_platform_guard_unavailable",
    "Guard calls that found Redis unreachable; their requests went out unguarded.",
    ["platform"],
)

_REASON_TEXT = {
    "circuit_open": "failing (circuit breaker open after repeated errors)",
    "circuit_half_open": "being probed after repeated errors (circuit breaker half-open)",
    "paused": "paused at the platform's request",
    "rate_limited": "at its shared rate limit",
}


@dataclass(frozen=True)
class GuardConfig:
    """Everything a guard needs from the Settings (hashable: one guard per distinct config)."""

    redis_url: str
    limits: tuple[tuple[str, PlatformLimits], ...]
    max_wait_seconds: float
    failure_threshold: int
    window_seconds: float
    open_seconds: float
    max_open_seconds: float
    probe_lease_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardConfig:
        return cls(
            redis_url=settings.redis_url.get_secret_value(),
            limits=tuple((name, platform_limits(settings, name)) for name in PLATFORMS),
            max_wait_seconds=settings.scraper_max_throttle_wait_seconds,
            failure_threshold=settings.scraper_breaker_failure_threshold,
            window_seconds=settings.scraper_breaker_window_seconds,
            open_seconds=settings.scraper_breaker_open_seconds,
            max_open_seconds=settings.scraper_breaker_max_open_seconds,
            # A probe that never reports (its worker died) frees the host after this long.
            probe_lease_seconds=settings.scraper_timeout_seconds + 5.0,
        )


@dataclass(frozen=True)
class Admission:
    host: str
    platform: str
    probe: bool
    # The breaker has something to forget (failures, or a probe in flight) if this succeeds.
    report_success: bool


def _ms(seconds: float) -> int:
    return max(0, int(seconds * 1000))


class HostGuard:
    """One per process and configuration; its Redis client is made on the event loop that
    first uses it and again if a later call runs on another loop."""

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        self._limits = dict(config.limits)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis: redis.asyncio.Redis | None = None
        self._scripts: list[AsyncScript] = []
        self._warned_at = 0.0

    def _client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        if self._redis is None or self._loop is not loop:
            # Connections belong to the loop they were opened on; one from a finished loop
            # cannot be reused, so a new loop gets a new client.
            # Hundreds of requests in flight share a few connections: a caller waits for a
            # free one (the calls take well under a millisecond) instead of failing.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self.config.redis_url,
                max_connections=REDIS_CONNECTIONS,
                timeout=POOL_WAIT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self._redis = redis.asyncio.Redis(connection_pool=pool)
            self._scripts = [self._redis.register_script(s) for s in (ADMIT, REPORT, PAUSE)]
            self._loop = loop
        return self._redis

    async def _run(
        self, platform: str, index: int, keys: list[str], args: list[str | int | float]
    ) -> list[object] | None:
        self._client()
        try:
            result = await self._scripts[index](keys=keys, args=args)
        except (redis.RedisError, OSError) as exc:
            GUARD_UNAVAILABLE.labels(platform).inc()
            now = time.monotonic()
            if now - self._warned_at > _WARN_EVERY_SECONDS:
                self._warned_at = now
                logger.warning(
                    "platform rate limits and circuit breakers are unavailable, requests go "
                    "out unguarded: %s: %s",
                    type(exc).__name__,
                    exc,
                )
            return None
        return [item.decode() if isinstance(item, bytes) else item for item in result]

    async def admit(self, host: str, platform: str) -> Admission | None:
        """Wait for the host's turn, or raise PlatformDeferredError. None: Redis is out."""
        limits = self._limits.get(platform, PlatformLimits(0.0, 1))
        result = await self._run(
            platform,
            0,
            [host_key(host), HOSTS_KEY],
            [
                host,
                platform,
                repr(limits.requests_per_second),
                limits.burst,
                _ms(self.config.max_wait_seconds),
                _ms(self.config.probe_lease_seconds),
                _ms(HOST_IDLE_TTL_SECONDS),
            ],
        )
        if result is None:
            return None
        verdict, wait_ms, reason, flags = result
        wait = int(str(wait_ms)) / 1000
        if int(str(verdict)) == 1:
            raise self._deferred(host, platform, str(reason), wait)
        if wait > 0:
            THROTTLE_WAIT.labels(platform).observe(wait)
            await asyncio.sleep(wait)
        flag_bits = int(str(flags))
        return Admission(host, platform, bool(flag_bits & 1), bool(flag_bits & 2))

    def _deferred(
        self, host: str, platform: str, reason: str, wait: float, *, cause: str = ""
    ) -> PlatformDeferredError:
        DEFERRED.labels(platform, reason).inc()
        if reason != "rate_limited":
            # Everyone deferred by an open circuit or a pause would come back at the same
            # instant; a little jitter spreads them (rate-limited slots are spread already).
            wait += random.uniform(0, min(5.0, wait / 10))
        text = _REASON_TEXT.get(reason, reason)
        return PlatformDeferredError(
            f"platform host {host} is {text}{cause}; trying again in {wait:.0f}s",
            delay_seconds=wait,
        )

    async def failed(self, admission: Admission, failure: str) -> PlatformDeferredError | None:
        """Record a failure; if the host's circuit is open now, the deferral to raise instead."""
        if self.config.failure_threshold <= 0:
            return None
        result = await self._run(
            admission.platform,
            1,
            [host_key(admission.host)],
            [
                "fail",
                self.config.failure_threshold,
                _ms(self.config.window_seconds),
                _ms(self.config.open_seconds),
                _ms(self.config.max_open_seconds),
                failure[:_MAX_FAILURE_TEXT],
            ],
        )
        if result is None:
            return None
        state, wait_ms, opened = result
        if int(str(opened)):
            CIRCUIT_OPENED.labels(admission.platform).inc()
            logger.warning("circuit breaker of %s opened: %s", admission.host, failure)
        if state != OPEN:
            return None
        return self._deferred(
            admission.host,
            admission.platform,
            "circuit_open",
            int(str(wait_ms)) / 1000,
            cause=f" (last error: {failure})",
        )

    async def succeeded(self, admission: Admission) -> None:
        if admission.report_success and self.config.failure_threshold > 0:
            await self._run(
                admission.platform, 1, [host_key(admission.host)], ["ok", 0, 0, 0, 0, ""]
            )

    async def pause(self, admission: Admission, seconds: float, reason: str) -> None:
        PAUSES.labels(admission.platform, reason).inc()
        await self._run(admission.platform, 2, [host_key(admission.host)], [_ms(seconds), reason])


_guards_lock = threading.Lock()
_guards: dict[GuardConfig, HostGuard] = {}


def host_guard(settings: Settings) -> HostGuard:
    """The process-wide guard for these settings (its state lives in REDIS_URL)."""
    config = GuardConfig.from_settings(settings)
    with _guards_lock:
        guard = _guards.get(config)
        if guard is None:
            guard = _guards[config] = HostGuard(config)
        return guard


def guarded_host(url: httpx.URL) -> str:
    """The host a limit applies to: its name, with the port when it is not the default."""
    host = url.host.lower()
    if ":" in host:
        host = f"[{host}]"
    return host if url.port is None else f"{host}:{url.port}"


def _failure_text(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class GuardedTransport(httpx.AsyncBaseTransport):
    """Asks the guard before each request made for a platform, and tells it how it went."""

    def __init__(self, inner: httpx.AsyncBaseTransport, guard: HostGuard | None) -> None:
        self._inner = inner
        self._guard = guard

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        platform = request.extensions.get(PLATFORM_EXTENSION)
        if self._guard is None or not isinstance(platform, str):
            return await self._inner.handle_async_request(request)
        guard = self._guard
        admission = await guard.admit(guarded_host(request.url), platform)
        if admission is None:
            return await self._inner.handle_async_request(request)
        try:
            response = await self._inner.handle_async_request(request)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            deferred = await guard.failed(admission, _failure_text(exc))
            if deferred is not None:
                raise deferred from exc
            raise
        pause = pause_from_response(response.status_code, response.headers)
        if pause is not None:
            await guard.pause(admission, *pause)
        if response.status_code >= 500:
            deferred = await guard.failed(admission, f"HTTP {response.status_code}")
            if deferred is not None:
                await response.aclose()
                raise deferred
        else:
            await guard.succeeded(admission)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
