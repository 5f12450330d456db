"""Every error becomes `{"error": <kind>, "detail": <what is wrong>}` here, in one place."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import OperationalError as DatabaseOperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gristmill.errors import (
    ConflictError,
    DependencyUnavailableError,
    DomainError,
    InvalidInputError,
    NotFoundError,
)

log = structlog.get_logger(__name__)


class UnauthorizedError(Exception):
    pass


class ForbiddenError(Exception):
    pass


_STATUS_BY_ERROR: list[tuple[type[Exception], int, str]] = [
    (UnauthorizedError, status.HTTP_401_UNAUTHORIZED, "unauthorized"),
    (ForbiddenError, status.HTTP_403_FORBIDDEN, "forbidden"),
    (NotFoundError, status.HTTP_404_NOT_FOUND, "not_found"),
    (ConflictError, status.HTTP_409_CONFLICT, "conflict"),
    (InvalidInputError, status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_input"),
    (DependencyUnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE, "unavailable"),
]


def error_body(kind: str, detail: Any) -> dict[str, Any]:
    return {"error": kind, "detail": detail}


def error_response_for(exc: Exception) -> tuple[int, dict[str, Any]]:
    """The status code and JSON body an expected error is answered with."""
    for error_type, code, kind in _STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return code, error_body(kind, str(exc))
    return 400, error_body("error", str(exc))


def _domain_handler(request: Request, exc: Exception) -> JSONResponse:
    code, body = error_response_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    return JSONResponse(body, status_code=code, headers=headers)


def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {
            "location": ".".join(str(part) for part in error["loc"]),
            "message": error["msg"],
        }
        for error in exc.errors()
    ]
    return JSONResponse(
        error_body("invalid_input", problems), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        error_body("http_error", exc.detail), status_code=exc.status_code, headers=exc.headers
    )


# SQLSTATE classes that mean "try again", not "the database is down".
_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03", "57014"}


def _unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return JSONResponse(
            error_body("conflict", "a concurrent change got in the way; retry the request"),
            status_code=status.HTTP_409_CONFLICT,
            headers={"Retry-After": "1"},
        )
    which = "PostgreSQL" if isinstance(exc, DBAPIError) else "Redis"
    log.warning("dependency_unavailable", dependency=which, error=type(exc).__name__)
    return JSONResponse(
        error_body("unavailable", f"{which} is unreachable; try again shortly"),
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


def _data_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # Input the database refuses (a NUL byte in a key, an out-of-range number): the request
    # is wrong, so it is a 422, never a 500.
    return JSONResponse(
        error_body("invalid_input", "the request contains characters or values not accepted"),
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", path=request.url.path, error=type(exc).__name__, exc_info=exc)
    return JSONResponse(
        error_body("internal_error", "an unexpected error occurred; it has been logged"),
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def install_error_handlers(app: FastAPI) -> None:
    domain_errors: tuple[type[Exception], ...] = (DomainError, UnauthorizedError, ForbiddenError)
    for error_type in domain_errors:
        app.add_exception_handler(error_type, _domain_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    unavailable: tuple[type[Exception], ...] = (
        DatabaseOperationalError,
        BrokerError,
        RedisConnectionError,
    )
    for error_type in unavailable:
        app.add_exception_handler(error_type, _unavailable_handler)
    app.add_exception_handler(DataError, _data_error_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
