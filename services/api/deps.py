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
from services.api.auth import Caller, authenticate
from services.api.errors import ForbiddenError

bearer = HTTPBearer(auto_error=False, description="A token from API_TOKENS or API_READ_TOKENS")


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
async def get_caller(
    request: Request,
    settings: SettingsDep,
    # Declared only so OpenAPI documents the bearer scheme; `authenticate` reads the header.
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    caller = authenticate(settings, request.method, request.headers, request.cookies)
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def require_read(caller: CallerDep) -> Caller:
    return caller


async def require_write(caller: CallerDep) -> Caller:
    if caller.scope != "write":
        raise ForbiddenError("this token is read-only; writing needs a token from API_TOKENS")
    return caller


ReadAuth = Depends(require_read)
WriteAuth = Depends(require_write)
