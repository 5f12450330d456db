"""Requests an HTTP client library would refuse to send (raw bytes in a path, a body shorter
than its Content-Length), written to a socket by hand, and their answers parsed."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(
    method: str,
    target: bytes,
    *,
    token: str | None = None,
    headers: list[bytes] | None = None,
    body: bytes | None = None,
    content_length: int | None = None,
) -> bytes:
    """One HTTP/1.1 request. `content_length` defaults to the body's length; a larger one
    announces a body that is never sent."""
    lines = [
        method.encode() + b" " + target + b" HTTP/1.1",
        b"Host: gristmill",
        b"Connection: close",
    ]
    if token is not None:
        lines.append(b"Authorization: Bearer " + token.encode())
    lines += headers or []
    if content_length is None and body is not None:
        content_length = len(body)
    if content_length is not None:
        lines.append(b"Content-Length: " + str(content_length).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def send_raw(port: int, data: bytes, *, timeout: float = 10) -> RawResponse:
    """Send `data` and read the answer until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return parse_response(received)


def parse_response(received: bytes) -> RawResponse:
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)
