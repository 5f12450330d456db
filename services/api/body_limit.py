"""Refuse request bodies over API_MAX_BODY_BYTES with 413, before they are read whole.

uvicorn has no body-size limit of its own, and Starlette reads a body into memory at once
(`request.body()`), so without this a client could make an api pod hold any amount it sends.
A pure ASGI middleware (not `BaseHTTPMiddleware`, which buffers) checks two things:

- a declared `Content-Length` over the limit is answered 413 at once, without reading a byte
  of the body;
- a body without a length (chunked) is counted as it arrives, and the read that crosses the
  limit raises `BodyTooLargeError`, which the error handlers turn into the same 413. What was
  read up to then (at most the limit plus one chunk) is all the process ever holds.

The 413 says `Connection: close`: the rest of the body is never read, so the connection cannot
be reused for another request.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large_detail(limit: int) -> str:
    return f"request body is larger than {limit} bytes (API_MAX_BODY_BYTES)"


class BodyTooLargeError(HTTPException):
    """Raised by the counting `receive` when a body without a declared length crosses the
    limit. An HTTPException, so FastAPI's body parsing lets it through to the error handlers
    instead of turning it into a 400 "error parsing the body"."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_detail(limit), headers={"Connection": "close"})


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _send_too_large(send, self.max_body_bytes)
            return
        limit = self.max_body_bytes
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # The HTTP parser (h11 / httptools) has already refused a malformed length.
            return int(value) if value.isdigit() else None
    return None


async def _send_too_large(send: Send, limit: int) -> None:
    body = json.dumps({"error": "payload_too_large", "detail": too_large_detail(limit)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
