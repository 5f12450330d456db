"""Access on every /api route, found by walking the app's routes: a route added tomorrow is
checked without touching this file. 401 (with `WWW-Authenticate: Bearer`) without a token or
with a wrong one, 403 for a read-only token on every write method, and the tokens never in the
api's log. Requests go to the real api process."""

from __future__ import annotations

import base64
import hmac
import os
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from gristmill.db import Database
from gristmill.settings import Settings
from services.api.app import create_app
from tests.conftest import READ_TOKEN, WRITE_TOKEN
from tests.support.raw_http import request_bytes, send_raw
from tests.support.routes import app_routes
from tests.support.stack import Stack

READ_METHODS = {"GET", "HEAD", "OPTIONS"}
WRONG_TOKENS = [
    "wrong-token-7f3a9c",
    WRITE_TOKEN[:-1],  # a prefix
    WRITE_TOKEN + "x",  # a longer token starting with the right one
    WRITE_TOKEN.upper(),
    f"{WRITE_TOKEN} {WRITE_TOKEN}",
]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # path parameters filled in

    @property
    def writes(self) -> bool:
        return self.method not in READ_METHODS

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _filled(path: str) -> str:
    # A UUID fits every kind of path parameter (job ids, account keys, platforms).
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


# The dashboard's sign-in: it takes the token in its body (POST), says who is signed in, if
# anyone, without an error (GET) and forgets the cookie (DELETE). It is how a browser gets
# access, so no token can be asked for first; tests/api/test_console_session.py covers it.
PUBLIC_PATHS = {"/api/session"}


def api_routes(settings: Settings) -> tuple[list[Endpoint], list[str]]:
    """Every HTTP method of every /api route, and every /api WebSocket path, of the app."""
    endpoints: list[Endpoint] = []
    websockets: list[str] = []
    for route in app_routes(create_app(settings)):
        if not route.path.startswith("/api") or route.path in PUBLIC_PATHS:
            continue
        if route.websocket:
            websockets.append(_filled(route.path))
        else:
            endpoints += [Endpoint(method, _filled(route.path)) for method in sorted(route.methods)]
    return endpoints, websockets


@pytest.fixture
def endpoints(api_settings: Settings) -> list[Endpoint]:
    found, _ = api_routes(api_settings)
    # The walk finds the api as it is: at least what the README lists today.
    assert len(found) >= 16, found
    assert {str(e).split(" ")[0] for e in found} >= {"GET", "POST", "DELETE"}
    return found


@pytest.fixture
def client(api_process: Stack, api_db: Database) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_process.api_url, timeout=10) as plain_client:
        yield plain_client


def _status(client: httpx.Client, endpoint: Endpoint, headers: dict[str, str]) -> httpx.Response:
    """Status and headers only: a stream (an SSE route) is closed without waiting for it."""
    with client.stream(endpoint.method, endpoint.path, headers=headers) as response:
        if "text/event-stream" not in response.headers.get("content-type", ""):
            response.read()
        return response


def _assert_unauthorized(response: httpx.Response, endpoint: Endpoint) -> None:
    assert response.status_code == 401, (str(endpoint), response.status_code)
    assert response.headers["WWW-Authenticate"] == "Bearer", str(endpoint)
    assert response.json()["error"] == "unauthorized", str(endpoint)


def test_every_api_route_refuses_a_request_without_a_token(
    client: httpx.Client, endpoints: list[Endpoint]
) -> None:
    for endpoint in endpoints:
        _assert_unauthorized(_status(client, endpoint, {}), endpoint)
        for header in ["Basic " + base64.b64encode(b"x:y").decode(), "Bearer", WRITE_TOKEN]:
            # Another scheme, no credentials, the token without its scheme.
            response = _status(client, endpoint, {"Authorization": header})
            _assert_unauthorized(response, endpoint)


def test_every_api_route_refuses_a_wrong_token(
    client: httpx.Client, endpoints: list[Endpoint]
) -> None:
    for endpoint in endpoints:
        for token in WRONG_TOKENS:
            response = _status(client, endpoint, {"Authorization": f"Bearer {token}"})
            _assert_unauthorized(response, endpoint)


def test_a_read_only_token_is_refused_on_every_write_and_let_through_on_reads(
    client: httpx.Client, endpoints: list[Endpoint]
) -> None:
    read_only = {"Authorization": f"Bearer {READ_TOKEN}"}
    writes = [endpoint for endpoint in endpoints if endpoint.writes]
    assert writes
    for endpoint in endpoints:
        response = _status(client, endpoint, read_only)
        if endpoint.writes:
            assert response.status_code == 403, (str(endpoint), response.status_code)
            assert response.json()["error"] == "forbidden"
            assert "read-only" in response.json()["detail"]
        else:
            assert response.status_code not in (401, 403), (str(endpoint), response.status_code)
        # The write token passes the access check everywhere (what follows is the route's
        # business: 404 for the made-up ids, 202 for a start...).
        written = _status(client, endpoint, {"Authorization": f"Bearer {WRITE_TOKEN}"})
        assert written.status_code not in (401, 403), (str(endpoint), written.status_code)


def test_every_api_websocket_refuses_a_connection_without_a_token(
    api_process: Stack, api_settings: Settings
) -> None:
    """Refused at the handshake (401/403), or closed at once without a single message."""
    _, websockets = api_routes(api_settings)
    port = int(api_process.env["PORT"])
    for path in websockets:
        handshake = request_bytes(
            "GET",
            path.encode(),
            headers=[
                b"Upgrade: websocket",
                b"Connection: Upgrade",
                b"Sec-WebSocket-Version: 13",
                b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)),
            ],
        ).replace(b"Connection: close\r\n", b"")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(handshake)
            answer = sock.recv(65536)
            status = int(answer.split(b" ", 2)[1])
            if status == 101:
                frame = answer.partition(b"\r\n\r\n")[2] or sock.recv(65536)
                assert frame, f"{path}: accepted without a token"
                assert frame[0] & 0x0F == 0x8, f"{path}: not closed at once: {frame!r}"
            else:
                assert status in (401, 403), (path, answer[:300])


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every configured token is compared, with hmac.compare_digest, whichever matches: the
    time taken does not tell how many tokens there are before the right one, nor how much of
    a wrong token was right."""
    settings = Settings(
        api_tokens=[SecretStr("w1-aaaaaaaa"), SecretStr("w2-bbbbbbbb")],
        api_read_tokens=[SecretStr("r1-cccccccc"), SecretStr("r2-dddddddd")],
    )
    compared: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def counting_compare(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return real_compare(given, expected)

    monkeypatch.setattr("gristmill.settings.hmac.compare_digest", counting_compare)
    expected_scopes = {
        "w1-aaaaaaaa": "write",
        "w2-bbbbbbbb": "write",
        "r2-dddddddd": "read",
        "w1-aaaaaaab": None,
        "w1": None,
        "": None,
        "ÿþ": None,
    }
    for token, scope in expected_scopes.items():
        compared.clear()
        assert settings.token_scope(token) == scope, token
        assert len(compared) == 4, token


def test_non_ascii_and_oversized_authorization_headers_are_401(api_process: Stack) -> None:
    port = int(api_process.env["PORT"])
    for header in [b"Authorization: Bearer \xff\xfe", b"Authorization: Bearer " + b"t" * 20_000]:
        response = send_raw(port, request_bytes("GET", b"/api/jobs", headers=[header]))
        assert response.status == 401
        assert response.json()["error"] == "unauthorized"


def test_tokens_never_reach_the_api_log(
    client: httpx.Client, endpoints: list[Endpoint], api_process: Stack
) -> None:
    for endpoint in endpoints[:6]:
        for token in [WRITE_TOKEN, READ_TOKEN, "wrong-token-7f3a9c"]:
            _status(client, endpoint, {"Authorization": f"Bearer {token}"})
    log = api_process.log("api")
    assert log, "the api process logged nothing at all"
    for secret in [WRITE_TOKEN, READ_TOKEN, "wrong-token-7f3a9c"]:
        assert secret not in log
