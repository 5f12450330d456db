"""Browser sign-in: trade an API token for an HttpOnly session cookie (see services/api/auth.py).

The token travels once, in a POST body; it is never put in a URL, a cookie or a log.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.api.auth import SESSION_COOKIE, authenticate, new_session
from services.api.deps import SettingsDep
from services.api.errors import ErrorBody, ForbiddenError, UnauthorizedError

router = APIRouter(prefix="/api/session", tags=["session"])


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(
        min_length=1, max_length=512, description="A token from API_TOKENS or API_READ_TOKENS."
    )


class SessionRead(BaseModel):
    scope: Literal["read", "write"] | None = Field(
        description="`write`, `read` (read-only: writes are refused), or null: not signed in."
    )
    csrf_token: str | None = Field(
        description="Send as `X-CSRF-Token` on writes made with the session cookie."
    )
    expires_at: float | None = Field(description="Unix time the session ends.")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


@router.post(
    "",
    responses={
        401: {
            "model": ErrorBody,
            "description": "The token is not one of API_TOKENS or API_READ_TOKENS.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        }
    },
)
def sign_in(
    body: SignIn, request: Request, response: Response, settings: SettingsDep
) -> SessionRead:
    """Check the token and set the session cookie (HttpOnly, SameSite=Strict)."""
    cookie, caller = new_session(settings, body.token)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(settings.console_session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionRead(
        scope=caller.scope, csrf_token=caller.csrf_token, expires_at=caller.expires_at
    )


@router.get("")
def current_session(request: Request, response: Response, settings: SettingsDep) -> SessionRead:
    """Who the caller is (scope null when not signed in, so the page can ask without an error);
    with a cookie, also the CSRF token the page needs for writes."""
    response.headers["Cache-Control"] = "no-store"
    try:
        caller = authenticate(settings, "GET", request.headers, request.cookies)
    except (UnauthorizedError, ForbiddenError):
        return SessionRead(scope=None, csrf_token=None, expires_at=None)
    return SessionRead(
        scope=caller.scope, csrf_token=caller.csrf_token, expires_at=caller.expires_at
    )


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(request: Request) -> Response:
    """Forget the session cookie in this browser."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )
    return response
