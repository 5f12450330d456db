"""Who is calling: a bearer token (API clients, the CLI) or a browser session cookie (the
dashboard), for HTTP requests and WebSocket handshakes alike.

The session cookie never holds the token. It is `v1.<token id>.<expiry>.<mac>`: the token id is
a short hash naming which configured token signed in, the MAC is an HMAC keyed with that token.
Removing a token from API_TOKENS / API_READ_TOKENS therefore ends its sessions on every replica,
with no session store. Writes made with the cookie must carry the session's CSRF token in the
`X-CSRF-Token` header (and come from the same origin); the cookie is HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from gristmill.settings import Settings
from services.api.errors import ForbiddenError, UnauthorizedError

SESSION_COOKIE = "gristmill_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Scope = Literal["read", "write"]


@dataclass(frozen=True)
class Caller:
    scope: Scope
    via_cookie: bool
    # A digest naming the token the caller acts with (directly or through its session):
    # Idempotency-Keys are scoped by it.
    principal: str = ""
    # Set for cookie sessions: the CSRF token the dashboard must echo on writes.
    csrf_token: str | None = None
    expires_at: float | None = None


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _principal(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _mac(token: str, payload: str) -> str:
    return hmac.new(token.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _tokens(settings: Settings) -> list[tuple[str, Scope]]:
    write: list[tuple[str, Scope]] = [(t.get_secret_value(), "write") for t in settings.api_tokens]
    read: list[tuple[str, Scope]] = [
        (t.get_secret_value(), "read") for t in settings.api_read_tokens
    ]
    return write + read


def new_session(settings: Settings, token: str, *, now: float | None = None) -> tuple[str, Caller]:
    """The cookie value for a sign-in with `token`; raises UnauthorizedError for a bad token."""
    scope = settings.token_scope(token)
    if scope is None:
        raise UnauthorizedError("invalid token")
    expires = int((now or time.time()) + settings.console_session_hours * 3600)
    payload = f"v1.{_token_id(token)}.{expires}"
    cookie = f"{payload}.{_mac(token, payload)}"
    return cookie, Caller(
        "write" if scope == "write" else "read",
        via_cookie=True,
        principal=_principal(token),
        csrf_token=_mac(token, f"csrf.{cookie}"),
        expires_at=float(expires),
    )


def session_caller(settings: Settings, cookie: str, *, now: float | None = None) -> Caller | None:
    parts = cookie.split(".")
    if len(parts) != 4 or parts[0] != "v1" or not parts[2].isdigit():
        return None
    _, token_id, expires, mac = parts
    if int(expires) < (now or time.time()):
        return None
    payload = f"v1.{token_id}.{expires}"
    for token, scope in _tokens(settings):
        # Every token is checked, whichever matches, so timing tells nothing about which.
        if hmac.compare_digest(_token_id(token), token_id) and hmac.compare_digest(
            _mac(token, payload), mac
        ):
            return Caller(
                scope,
                via_cookie=True,
                principal=_principal(token),
                csrf_token=_mac(token, f"csrf.{cookie}"),
                expires_at=float(expires),
            )
    return None


def _same_origin(headers: Mapping[str, str]) -> bool:
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser cross-origin request (browsers send Origin on those)
    host = headers.get("x-forwarded-host") or headers.get("host")
    return urlsplit(origin).netloc == host


def authenticate(
    settings: Settings, method: str, headers: Mapping[str, str], cookies: Mapping[str, str]
) -> Caller:
    """The caller of a request or WebSocket handshake; raises 401 or 403 errors."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise UnauthorizedError("missing bearer token: send 'Authorization: Bearer <token>'")
        scope = settings.token_scope(credentials.strip())
        if scope is None:
            raise UnauthorizedError("invalid bearer token")
        return Caller(
            "write" if scope == "write" else "read",
            via_cookie=False,
            principal=_principal(credentials.strip()),
        )
    cookie = cookies.get(SESSION_COOKIE)
    if not cookie:
        raise UnauthorizedError("missing bearer token: send 'Authorization: Bearer <token>'")
    caller = session_caller(settings, cookie)
    if caller is None:
        raise UnauthorizedError("the session has expired or its token was revoked; sign in again")
    # A page of another site can make the browser send the cookie: it must not act with it.
    if not _same_origin(headers):
        raise ForbiddenError("cross-origin request refused")
    if method.upper() not in SAFE_METHODS:
        given = headers.get(CSRF_HEADER, "")
        if not caller.csrf_token or not hmac.compare_digest(given, caller.csrf_token):
            raise ForbiddenError("missing or wrong X-CSRF-Token header for a cookie session")
    return caller
