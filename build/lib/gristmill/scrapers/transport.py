"""The one place that turns HTTP outcomes into Transient / Permanent / NotFound."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from gristmill.scrapers.base import (
    AccountNotFoundError,
    PermanentScrapeError,
    TransientScrapeError,
)
from gristmill.scrapers.ssrf import (
    UnresolvableHostError,
    UnsafeBaseURLError,
    check_resolved_host_async,
)

# Platform error text is echoed to operators; cap it so a hostile server cannot flood
# logs.
_MAX_DETAIL_CHARS = 200

NotFoundCheck = Callable[[httpx.Response, Any], bool]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait per a Retry-After header (delta-seconds or HTTP-date) or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 HTTP-dates are always GMT even when the zone is spelled "-0000".
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _body_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _detail(body: Any) -> str:
    """The platform's own short error text, if the body carried one."""
    if not isinstance(body, Mapping):
        return ""
    parts = [str(body[key]) for key in ("error", "message") if isinstance(body.get(key), str)]
    text = ": ".join(parts)[:_MAX_DETAIL_CHARS]
    return f" ({text})" if text else ""


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, str] | None,
    subject: str,
    is_not_found: NotFoundCheck,
    allow_private_networks: bool,
) -> tuple[Any, httpx.Response]:
    """GET `url` and return (decoded JSON body, response), or raise a ScrapeError.

    `subject` names the account for messages, e.g. "mastodon account
    alice@example.social". `is_not_found(response, body)` decides whether an error
    response means the account does not exist; it is consulted for 4xx answers only.
    """
    try:
        await check_resolved_host_async(url, allow_private_networks)
    except UnresolvableHostError as exc:
        raise TransientScrapeError(f"{subject}: {exc}") from exc
    except UnsafeBaseURLError as exc:
        raise PermanentScrapeError(f"{subject}: refusing to send request: {exc}") from exc

    host = httpx.URL(url).host
    try:
        response = await client.get(url, params=params)
    except httpx.TimeoutException as exc:
        raise TransientScrapeError(
            f"{subject}: request to {host} timed out ({type(exc).__name__})"
        ) from exc
    except httpx.TransportError as exc:
        raise TransientScrapeError(
            f"{subject}: could not reach {host} ({type(exc).__name__}: {exc})"
        ) from exc

    status = response.status_code
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        wait = f", retry after {retry_after:.0f}s" if retry_after is not None else ""
        raise TransientScrapeError(
            f"{subject}: rate limited by {host} (HTTP 429){wait}",
            retry_after=retry_after,
        )
    if status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        detail = _detail(_body_json(response))
        raise TransientScrapeError(
            f"{subject}: server error from {host} (HTTP {status}){detail}",
            retry_after=retry_after,
        )
    if status >= 400:
        body = _body_json(response)
        if is_not_found(response, body):
            raise AccountNotFoundError(f"{subject} not found (HTTP {status})")
        raise PermanentScrapeError(
            f"{subject}: request rejected by {host} (HTTP {status}){_detail(body)}"
        )
    if status >= 300:
        # Redirects are never followed: the target was not checked against the SSRF
        # rules.
        location = response.headers.get("Location", "(no Location header)")
        raise PermanentScrapeError(
            f"{subject}: unexpected redirect from {host} (HTTP {status}) to {location}"
        )
    if status != 200:
        raise PermanentScrapeError(f"{subject}: unexpected HTTP {status} from {host}")
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PermanentScrapeError(
            f"{subject}: malformed JSON from {host} (HTTP {status}): {exc}"
        ) from exc
    return body, response
