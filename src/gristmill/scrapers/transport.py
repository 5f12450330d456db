"""The one place that turns HTTP outcomes into Transient / Permanent / NotFound / Deferred."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from gristmill.scrapers.base import (
    AccountNotFoundError,
    PermanentScrapeError,
    PlatformDeferredError,
    TransientScrapeError,
)
from gristmill.scrapers.guard import PLATFORM_EXTENSION
from gristmill.scrapers.ratelimit import parse_retry_after
from gristmill.scrapers.ssrf import (
    UnresolvableHostError,
    UnsafeBaseURLError,
    check_request_url,
)

# Platform error text is echoed to operators; cap it so a hostile server cannot flood
# logs.
_MAX_DETAIL_CHARS = 200

NotFoundCheck = Callable[[httpx.Response, Any], bool]

# Redirects are followed, each hop checked like the first request (URL rules here, addresses
# where the connection is made, rate limit and breaker of the hop's host), but only a few:
# an API that moved answers with one or two, a loop never ends.
MAX_REDIRECTS = 3
_FOLLOWED = frozenset({301, 302, 303, 307, 308})

__all__ = ["MAX_REDIRECTS", "get_json", "parse_retry_after"]


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


async def _send(
    client: httpx.AsyncClient,
    url: str,
    params: Mapping[str, str] | None,
    *,
    subject: str,
    platform: str,
    allow_private_networks: bool,
) -> httpx.Response:
    try:
        check_request_url(url, allow_private_networks=allow_private_networks)
    except UnsafeBaseURLError as exc:
        raise PermanentScrapeError(f"{subject}: refusing to send request: {exc}") from exc
    host = httpx.URL(url).host
    try:
        return await client.get(url, params=params, extensions={PLATFORM_EXTENSION: platform})
    except PlatformDeferredError as exc:
        raise PlatformDeferredError(f"{subject}: {exc}", delay_seconds=exc.delay_seconds) from exc
    except UnresolvableHostError as exc:
        raise TransientScrapeError(f"{subject}: {exc}") from exc
    except UnsafeBaseURLError as exc:
        raise PermanentScrapeError(f"{subject}: refusing to send request: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise TransientScrapeError(
            f"{subject}: request to {host} timed out ({type(exc).__name__})"
        ) from exc
    except httpx.TransportError as exc:
        raise TransientScrapeError(
            f"{subject}: could not reach {host} ({type(exc).__name__}: {exc})"
        ) from exc


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, str] | None,
    subject: str,
    platform: str,
    is_not_found: NotFoundCheck,
    allow_private_networks: bool,
) -> tuple[Any, httpx.Response]:
    """GET `url` and return (decoded JSON body, final response), or raise a ScrapeError.

    `subject` names the account for messages, e.g. "mastodon account
    alice@example.social"; `platform` selects the host's shared rate limit. `is_not_found(
    response, body)` decides whether an error response means the account does not exist; it
    is consulted for 4xx answers only. Up to MAX_REDIRECTS redirects are followed.
    """
    response = await _send(
        client,
        url,
        params,
        subject=subject,
        platform=platform,
        allow_private_networks=allow_private_networks,
    )
    for _ in range(MAX_REDIRECTS):
        location = response.headers.get("Location")
        if response.status_code not in _FOLLOWED or not location:
            break
        await response.aclose()
        response = await _send(
            client,
            # The query of the first request is in its URL already; a relative Location is
            # legal.
            str(response.url.join(location)),
            None,
            subject=subject,
            platform=platform,
            allow_private_networks=allow_private_networks,
        )
    host = response.url.host
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
        location = response.headers.get("Location", "(no Location header)")
        if status in _FOLLOWED and "Location" in response.headers:
            raise PermanentScrapeError(
                f"{subject}: more than {MAX_REDIRECTS} redirects, the last from {host} "
                f"(HTTP {status}) to {location}"
            )
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
