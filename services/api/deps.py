"""Typed dependencies that keep route signatures short."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from gristmill.db import get_database
from gristmill.jobs.intake import JobIntake
from gristmill.settings import Settings
from services.api.errors import ForbiddenError, UnauthorizedError

_bearer = HTTPBearer(auto_error=False, description="A token from API_TOKENS or API_READ_TOKENS")


async def get_settings_from_app(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_from_app)]


def get_session() -> Iterator[Session]:
    """The request owns the transaction: commit when the route returns, roll back on error.
    Celery messages registered during the request are sent after the commit."""
    with get_database().sessionmaker() as session, session.begin():
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_job_intake(request: Request) -> JobIntake:
    """The api's group commit for starts (gristmill.jobs.intake): the intake, not the request,
    owns the transaction that starts a job, shared with the requests batched with it."""
    intake: JobIntake = request.app.state.job_intake
    return intake


IntakeDep = Annotated[JobIntake, Depends(get_job_intake)]


# Auth dependencies are `async def` on purpose: they do no I/O, and a plain `def` would cost a
# thread-pool hop per dependency per request.
async def _token_scope(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("missing bearer token: send 'Authorization: Bearer <token>'")
    scope = settings.token_scope(credentials.credentials)
    if scope is None:
        raise UnauthorizedError("invalid bearer token")
    return scope


async def require_read(scope: Annotated[str, Depends(_token_scope)]) -> str:
    return scope


async def require_write(scope: Annotated[str, Depends(_token_scope)]) -> str:
    if scope != "write":
        raise ForbiddenError("this token is read-only; writing needs a token from API_TOKENS")
    return scope


ReadAuth = Depends(require_read)
WriteAuth = Depends(require_write)
