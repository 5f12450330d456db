"""GET /api/platforms: each platform host's circuit breaker and shared rate limit, read-only."""

from __future__ import annotations

from datetime import datetime

import redis
from fastapi import APIRouter
from pydantic import BaseModel, Field

from gristmill.errors import DependencyUnavailableError
from gristmill.scrapers.base import PLATFORMS
from gristmill.scrapers.hoststate import read_host_states
from gristmill.scrapers.ratelimit import platform_limits
from services.api.deps import ReadAuth, SettingsDep

router = APIRouter(prefix="/api/platforms", tags=["platforms"])


class RateLimitConfig(BaseModel):
    requests_per_second: float = Field(description="Per host of this platform; 0 = no limit")
    burst: int


class BreakerConfig(BaseModel):
    failure_threshold: int = Field(description="Failures within the window that open it; 0 = off")
    window_seconds: float
    open_seconds: float = Field(description="First wait once open; doubles per failed probe")
    max_open_seconds: float


class CircuitState(BaseModel):
    state: str = Field(description="closed | open | half_open (the next request probes)")
    failures: int = Field(description="Failures counted in the current window")
    opened_count: int = Field(description="Times it opened since the host was first seen")
    open_until: datetime | None = Field(description="When a probe is let through (open only)")
    last_failure: str | None


class RateLimitState(BaseModel):
    requests_per_second: float
    burst: int
    tokens: float | None = Field(description="Tokens in the bucket now; negative = reserved")
    paused_until: datetime | None = Field(description="A pause the platform asked for")
    pause_reason: str | None = Field(
        description="retry_after | rate_limit_exhausted | too_many_requests"
    )


class HostRead(BaseModel):
    host: str
    platform: str
    circuit: CircuitState
    rate_limit: RateLimitState
    last_seen: datetime | None


class PlatformsRead(BaseModel):
    limits: dict[str, RateLimitConfig]
    breaker: BreakerConfig
    hosts: list[HostRead] = Field(description="Hosts any worker called in the last 24 h")


@router.get("", dependencies=[ReadAuth])
def list_platforms(settings: SettingsDep) -> PlatformsRead:
    """Circuit breaker and rate-limit state of every platform host, as all workers share it."""
    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(), socket_timeout=2, socket_connect_timeout=2
    )
    try:
        states = read_host_states(client)
    except redis.RedisError as exc:
        raise DependencyUnavailableError("Redis is unreachable; try again shortly") from exc
    finally:
        client.close()
    return PlatformsRead(
        limits={
            name: RateLimitConfig(**vars(platform_limits(settings, name))) for name in PLATFORMS
        },
        breaker=BreakerConfig(
            failure_threshold=settings.scraper_breaker_failure_threshold,
            window_seconds=settings.scraper_breaker_window_seconds,
            open_seconds=settings.scraper_breaker_open_seconds,
            max_open_seconds=settings.scraper_breaker_max_open_seconds,
        ),
        hosts=[
            HostRead(
                host=state.host,
                platform=state.platform,
                circuit=CircuitState(
                    state=state.breaker_state,
                    failures=state.failures,
                    opened_count=state.opened_count,
                    open_until=state.open_until,
                    last_failure=state.last_failure,
                ),
                rate_limit=RateLimitState(
                    requests_per_second=state.requests_per_second,
                    burst=state.burst,
                    tokens=state.tokens,
                    paused_until=state.paused_until,
                    pause_reason=state.pause_reason,
                ),
                last_seen=state.last_seen,
            )
            for state in states
        ],
    )
