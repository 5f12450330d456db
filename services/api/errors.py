"""Every error becomes `{"error": <kind>, "detail": <what is wrong>}` here, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as BrokerError
from pydantic import BaseModel, Field
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


class ErrorProblem(BaseModel):
    location: str = Field(description="Where: `body.days`, `query.limit`, `path.job_id`...")
    message: str


class ErrorBody(BaseModel):
    """The body of every error answer (documented in the OpenAPI document for each status)."""

    error: str = Field(description="The kind of error.", examples=["invalid_input"])
    detail: str | list[ErrorProblem] = Field(
        description="What is wrong: a message, or one problem per invalid input."
    )


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


def _problem_message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    reason = (error.get("ctx") or {}).get("error")
    if error.get("type") == "json_invalid" and reason:
        # "JSON decode error" alone does not say what is wrong; the decoder's reason does.
        message = f"{message}: {reason}"
    return message


def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {
            "location": ".".join(str(part) for part in error["loc"]),
            "message": _problem_message(error),
        }
        for error in exc.errors()
    ]
    return JSONResponse(
        error_body("invalid_input", problems), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


_KIND_BY_HTTP_STATUS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def _unparsable_body_detail(cause: BaseException | None) -> str | None:
    """What is wrong with a JSON body that FastAPI could not parse (it reports only "There was
    an error parsing the body", as a 400, and keeps the reason as the exception's cause)."""
    if isinstance(cause, RecursionError):
        return "request body: JSON nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return "request body is not valid UTF-8"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        # int() refuses strings of more than sys.get_int_max_str_digits() digits.
        return "request body: a number has too many digits"
    return None


def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        detail = _unparsable_body_detail(exc.__cause__)
        if detail is not None:
            return JSONResponse(
                error_body("invalid_input", detail),
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            )
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        detail = f"method {request.method} is not allowed here; allowed: {allowed}"
    kind = _KIND_BY_HTTP_STATUS.get(exc.status_code, "http_error")
    return JSONResponse(error_body(kind, detail), status_code=exc.status_code, headers=exc.headers)


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
    # is wrong, so it is a 422, never a 500. The driver's message is not echoed: it can name
    # columns and internals; these are the refusals a request can cause.
    reason = str(getattr(exc, "orig", exc))
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if "NUL" in reason:
        detail = "text must not contain NUL (0x00) characters"
    elif sqlstate == "22003":
        detail = "a number is out of range"
    else:
        detail = "the request contains characters or values not accepted"
    return JSONResponse(
        error_body("invalid_input", detail), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", path=request.url.path, error=type(exc).__name__, exc_info=exc)
    return JSONResponse(
        error_body("internal_error", "an unexpected error occurred; it has been logged"),
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


_WRITE_METHODS = {"post", "put", "patch", "delete"}
_ERROR_DESCRIPTIONS = {
    "401": "No token, or not a token from API_TOKENS / API_READ_TOKENS.",
    "403": "A read-only token (API_READ_TOKENS) cannot write.",
    "404": "The resource named in the path does not exist.",
    "409": "Not allowed in the resource's current state, or a concurrent change got in the "
    "way (retry after `Retry-After`).",
    "413": "The body is larger than API_MAX_BODY_BYTES.",
    "422": "Invalid input: `detail` names each problem.",
    "503": "PostgreSQL or Redis is unreachable; retry after `Retry-After`.",
}
_ERROR_HEADERS = {
    "401": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}},
    "503": {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds"}},
}


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    statuses: list[str] = []
    if operation.get("security"):
        statuses.append("401")
        if method in _WRITE_METHODS:
            statuses.append("403")
    if path.startswith("/api/"):
        if "{" in path:
            statuses.append("404")
        statuses += ["409", "503"]
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.append("422")
    if operation.get("requestBody"):
        statuses.append("413")
    return statuses


def document_error_responses(openapi: dict[str, Any]) -> dict[str, Any]:
    """Document the errors each operation can answer with, all as `ErrorBody`, in place of
    FastAPI's default 422 schema (`HTTPValidationError`), which is not what the handlers
    above send. Generic, so a new route is documented the same way."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    body_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(body_schema.pop("$defs", {}))
    schemas["ErrorBody"] = body_schema
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _error_statuses(path, method, operation):
                declared = responses.get(code)
                if declared is None or "HTTPValidationError" in str(declared):
                    responses[code] = {
                        "description": _ERROR_DESCRIPTIONS[code],
                        "content": content,
                        **({"headers": _ERROR_HEADERS[code]} if code in _ERROR_HEADERS else {}),
                    }
    return openapi


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

    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_error_responses(generate_openapi())
        return app.openapi_schema

    # FastAPI's documented way to customise the schema is to replace this method.
    app.openapi = openapi  # type: ignore[method-assign]
