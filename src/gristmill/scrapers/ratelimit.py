"""Rate limits: what each platform allows, and what a platform's answer says about waiting.

Platforms tell their clients to slow down in several dialects; each is turned into one host-wide
pause that every worker honours:
- `Retry-After` (RFC 9110; delta-seconds or an HTTP-date) on a 429 or 5xx;
- `RateLimit-Remaining: 0` with `RateLimit-Reset` (IETF httpapi draft: delta-seconds; Bluesky
  sends epoch seconds), or the draft's newer `RateLimit: "policy";r=0;t=30`;
- `X-RateLimit-Remaining: 0` with `X-RateLimit-Reset` (Mastodon: an ISO 8601 time; GitHub-style
  APIs: epoch seconds);
- a 429 that says nothing: a short default pause.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from gristmill.settings import Settings

# A platform may ask for a long pause, but never for longer than this (a hostile or broken
# header must not park a host for days).
MAX_PAUSE_SECONDS = 3600.0
# A 429 without any hint of how long to wait.
DEFAULT_429_PAUSE_SECONDS = 5.0
# Numbers above this in a reset header are epoch seconds, below it delta-seconds.
_EPOCH_THRESHOLD = 1_000_000_000


@dataclass(frozen=True)
class PlatformLimits:
    """Token bucket of each host of one platform: `requests_per_second` (0 = unlimited)
    refilling up to `burst` tokens."""

    requests_per_second: float
    burst: int


def platform_limits(settings: Settings, platform: str) -> PlatformLimits:
    """The configured limits of `platform` (SCRAPER_<PLATFORM>_REQUESTS_PER_SECOND/_BURST)."""
    return PlatformLimits(
        requests_per_second=float(getattr(settings, f"scraper_{platform}_requests_per_second")),
        burst=int(getattr(settings, f"scraper_{platform}_burst")),
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait per a Retry-After header (delta-seconds or HTTP-date) or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    return _seconds_until(_http_date(text), now)


def _http_date(text: str) -> datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    # RFC 9110 HTTP-dates are always GMT even when the zone is spelled "-0000".
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _seconds_until(when: datetime | None, now: datetime | None) -> float | None:
    if when is None:
        return None
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def parse_reset(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds until a rate-limit window resets: delta-seconds, epoch seconds, an ISO 8601
    time or an HTTP-date; None when the value means none of these."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if number < 0:
            return None
        if number < _EPOCH_THRESHOLD:
            return number
        current = now or datetime.now(UTC)
        return max(0.0, number - current.timestamp())
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return _seconds_until(_http_date(text), now)
    return _seconds_until(when if when.tzinfo is not None else when.replace(tzinfo=UTC), now)


_DRAFT_PARAM = re.compile(r";\s*([rt])\s*=\s*(\d+)")


def _remaining_and_reset(
    headers: Mapping[str, str], now: datetime | None
) -> tuple[int | None, float | None]:
    for prefix in ("ratelimit-", "x-ratelimit-"):
        remaining = headers.get(f"{prefix}remaining")
        if remaining is not None and remaining.strip().lstrip("-").isdigit():
            return int(remaining), parse_reset(headers.get(f"{prefix}reset"), now=now)
    combined = headers.get("ratelimit")
    if combined:
        params = dict(_DRAFT_PARAM.findall(combined))
        if "r" in params:
            return int(params["r"]), float(params["t"]) if "t" in params else None
    return None, None


def pause_from_response(
    status: int, headers: Mapping[str, str], *, now: datetime | None = None
) -> tuple[float, str] | None:
    """(seconds, reason) every worker should stay away from the host after this answer, or
    None. `headers` must look names up case-insensitively (httpx.Headers does)."""
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(headers.get("retry-after"), now=now)
        if retry_after is not None:
            # "Retry-After: 0" means "now": no pause, whatever else the answer says.
            return (min(retry_after, MAX_PAUSE_SECONDS), "retry_after") if retry_after else None
    remaining, reset = _remaining_and_reset(headers, now)
    if remaining is not None and remaining <= 0 and reset is not None and reset > 0:
        return min(reset, MAX_PAUSE_SECONDS), "rate_limit_exhausted"
    if status == 429:
        return DEFAULT_429_PAUSE_SECONDS, "too_many_requests"
    return None
