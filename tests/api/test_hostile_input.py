"""The nasty requests by hand, against the real api process (uvicorn in front): each is refused
with a 4xx JSON `{"error", "detail"}` naming what is wrong, never a 500, and the api goes on
answering."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from gristmill.db import Database
from gristmill.settings import Settings
from tests.conftest import WRITE_TOKEN
from tests.factories import make_account
from tests.support.raw_http import RawResponse, parse_response, request_bytes, send_raw
from tests.support.stack import Stack

LONG = "k" * 10_000


def assert_error(response: httpx.Response | RawResponse, status: int, *mentions: str) -> None:
    code = response.status_code if isinstance(response, httpx.Response) else response.status
    body = response.json()
    assert code == status, (code, body)
    assert set(body) == {"error", "detail"}, body
    text = json.dumps(body["detail"])
    for mention in mentions:
        assert mention in text, (mention, body)


@pytest.fixture
def port(api_process: Stack, api_db: Database) -> Iterator[int]:
    yield int(api_process.env["PORT"])
    # Whatever was sent, the process is still up and answering.
    assert httpx.get(f"{api_process.api_url}/healthz", timeout=5).status_code == 200


@pytest.fixture
def alice(api_db: Database) -> str:
    with api_db.transaction() as session:
        make_account(session, key="alice")
    return "alice"


def test_nul_bytes_in_path_query_and_body_are_refused_naming_nul(
    port: int, api_client: httpx.Client, alice: str
) -> None:
    for method, target in [
        ("GET", b"/api/accounts/a%00b"),
        ("DELETE", b"/api/accounts/a%00b"),
        ("GET", b"/api/accounts/a%00b/metrics"),
        ("POST", b"/api/jobs/scrape-account/a%00b"),
        ("GET", b"/api/jobs?account_key=a%00b"),
        ("GET", b"/api/accounts?platform=mast%00odon"),
    ]:
        response = send_raw(port, request_bytes(method, target, token=WRITE_TOKEN))
        assert_error(response, 422, "NUL")
    backfill = send_raw(
        port,
        request_bytes(
            "POST",
            b"/api/jobs/backfill-account/a%00b",
            token=WRITE_TOKEN,
            headers=[b"Content-Type: application/json"],
            body=b'{"days": 3}',
        ),
    )
    assert_error(backfill, 422, "NUL")
    # In a JSON body the validators see the NUL first and say which field is wrong.
    for field, value in [
        ("key", "a\u0000b"),
        ("handle", "a\u0000b@fake.social"),
        ("base_url", "https://a\u0000b.example"),
    ]:
        account = {"key": "bob", "platform": "mastodon", "handle": "bob@fake.social"}
        account[field] = value
        response = api_client.post("/api/accounts", json=account)
        assert_error(response, 422, field if field != "handle" else "handle")
    response = send_raw(port, request_bytes("GET", b"/api/jobs?cursor=a%00b", token=WRITE_TOKEN))
    assert_error(response, 422, "cursor")
    # A NUL in a header is refused by the HTTP parser itself.
    raw_nul_header = request_bytes(
        "GET", b"/api/jobs", token=WRITE_TOKEN, headers=[b"X-Note: a\x00b"]
    )
    assert send_raw(port, raw_nul_header).status == 400


def test_ten_thousand_character_keys_are_refused_or_not_found(
    api_client: httpx.Client, port: int
) -> None:
    for method, path in [
        ("GET", f"/api/accounts/{LONG}"),
        ("DELETE", f"/api/accounts/{LONG}"),
        ("GET", f"/api/accounts/{LONG}/metrics"),
        ("POST", f"/api/jobs/scrape-account/{LONG}"),
    ]:
        assert_error(api_client.request(method, path), 404, "not found")
    assert_error(
        api_client.post(f"/api/jobs/backfill-account/{LONG}", json={"days": 3}), 404, "not found"
    )
    assert_error(api_client.post(f"/api/jobs/scrape-platform/{LONG}"), 422, "unknown platform")
    assert_error(
        api_client.get("/api/jobs", params={"account_key": LONG}), 422, "query.account_key"
    )
    assert_error(api_client.get("/api/jobs", params={"cursor": LONG}), 422, "query.cursor")
    assert api_client.get("/api/accounts", params={"platform": LONG}).json() == []
    account = {"key": LONG, "platform": "mastodon", "handle": "x@fake.social"}
    assert_error(api_client.post("/api/accounts", json=account), 422, "body.key")
    extra_key = {"key": "bob", "platform": "mastodon", "handle": "b@fake.social", LONG: 1}
    assert_error(api_client.post("/api/accounts", json=extra_key), 422, "Extra inputs")
    # A 10k-character header value, and a 10k-character header name.
    long_token = api_client.get("/api/jobs", headers={"Authorization": f"Bearer {LONG}"})
    assert_error(long_token, 401, "invalid bearer token")
    long_name = send_raw(
        port,
        request_bytes("GET", b"/api/jobs", token=WRITE_TOKEN, headers=[LONG.encode() + b": 1"]),
    )
    assert long_name.status == 200


def test_invalid_utf8_in_bodies_and_paths(port: int, alice: str) -> None:
    body = b'{"key": "b\xff\xfe", "platform": "mastodon", "handle": "b@fake.social"}'
    response = send_raw(
        port,
        request_bytes(
            "POST",
            b"/api/accounts",
            token=WRITE_TOKEN,
            headers=[b"Content-Type: application/json"],
            body=body,
        ),
    )
    assert_error(response, 422, "not valid UTF-8")
    # Percent-encoded invalid UTF-8 is decoded with replacement characters: a key that is not.
    encoded = send_raw(port, request_bytes("GET", b"/api/accounts/a%ff%fe", token=WRITE_TOKEN))
    assert_error(encoded, 404, "not found")
    query = send_raw(port, request_bytes("GET", b"/api/jobs?account_key=%ff", token=WRITE_TOKEN))
    assert query.status == 200
    # Raw non-ASCII bytes are not a valid HTTP request target: uvicorn's parser answers 400
    # before the app is called (plain text: no route, no handler exists yet to say more).
    raw = send_raw(port, request_bytes("GET", b"/api/accounts/a\xff\xfe", token=WRITE_TOKEN))
    assert raw.status == 400


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(port: int) -> None:
    for target in [b"/api/accounts", b"/api/jobs/scrape-all", b"/api/jobs/backfill-account/x"]:
        started = time.monotonic()
        # One GB announced, nothing sent: the answer can only come without reading the body.
        response = send_raw(
            port,
            request_bytes(
                "POST",
                target,
                token=WRITE_TOKEN,
                headers=[b"Content-Type: application/json"],
                content_length=1_000_000_000,
            ),
            timeout=5,
        )
        assert_error(response, 413, "API_MAX_BODY_BYTES")
        assert response.headers["connection"] == "close"
        assert time.monotonic() - started < 5


def test_a_chunked_body_over_the_limit_is_refused_as_it_crosses_it(port: int) -> None:
    chunk = b"[" * 65536
    head = request_bytes(
        "POST",
        b"/api/accounts",
        token=WRITE_TOKEN,
        headers=[b"Content-Type: application/json", b"Transfer-Encoding: chunked"],
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        # 1 MiB + 64 KiB, and the body never ends: the answer cannot wait for its end.
        try:
            for _ in range(17):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        received = b""
        while not received.endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            received += data
    assert_error(parse_response(received), 413, "API_MAX_BODY_BYTES")


def test_the_body_limit_is_exact_and_set_by_api_max_body_bytes(
    api_settings: Settings, clean_db: Database
) -> None:
    from services.api.app import create_app

    settings = api_settings.model_copy(update={"api_max_body_bytes": 2048})
    app = create_app(settings)
    padding = {"key": "bob", "platform": "mastodon", "handle": "b@fake.social", "base_url": ""}
    headers = {"Authorization": f"Bearer {WRITE_TOKEN}", "Content-Type": "application/json"}
    with TestClient(app, headers=headers) as client:
        room = 2048 - len(json.dumps(padding).encode())
        at_limit = json.dumps({**padding, "base_url": "h" * room}).encode()
        assert len(at_limit) == 2048
        # Exactly the limit is read and parsed (and refused for what it says, not its size).
        assert_error(client.post("/api/accounts", content=at_limit), 422, "base_url")
        over = at_limit[:-1] + b" }"
        assert_error(client.post("/api/accounts", content=over), 413, "2048 bytes")

        def chunks() -> Iterator[bytes]:
            yield over[:1000]
            yield over[1000:]

        assert_error(client.post("/api/accounts", content=chunks()), 413, "2048 bytes")


def test_deeply_nested_json_is_refused_cleanly(api_client: httpx.Client, alice: str) -> None:
    headers = {"Content-Type": "application/json"}
    too_deep = b"[" * 100_000 + b"]" * 100_000
    for path in ["/api/accounts", "/api/jobs/backfill-account/alice"]:
        response = api_client.post(path, content=too_deep, headers=headers)
        assert_error(response, 422, "nested too deeply")
    deep_object = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    assert_error(
        api_client.post("/api/accounts", content=deep_object, headers=headers),
        422,
        "nested too deeply",
    )
    # Nested within what the JSON parser takes: the model refuses it for what it is.
    nested_value = b'{"days": ' + b"[" * 500 + b"]" * 500 + b"}"
    response = api_client.post(
        "/api/jobs/backfill-account/alice", content=nested_value, headers=headers
    )
    assert_error(response, 422, "body.days")


def test_wrong_content_types_are_refused(api_client: httpx.Client, alice: str) -> None:
    account = json.dumps({"key": "bob", "platform": "mastodon", "handle": "b@fake.social"})
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "image/png",
    ]:
        response = api_client.post(
            "/api/accounts", content=account, headers={"Content-Type": content_type}
        )
        assert_error(response, 422, "body")
    garbage = api_client.post(
        "/api/accounts", content=b"not json", headers={"Content-Type": "application/json"}
    )
    assert_error(garbage, 422, "JSON decode error: Expecting value")
    not_an_object = api_client.post("/api/jobs/backfill-account/alice", json=[1, 2])
    assert_error(not_an_object, 422, "body")


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/api/jobs", "/api/dead-letters"])
def test_malformed_cursors_are_refused(api_client: httpx.Client, path: str) -> None:
    for cursor in [
        "",
        "!!!",
        "é",
        "a" * 200,
        _cursor("garbage"),
        _cursor("2026-01-01T00:00:00|not-a-uuid"),
        _cursor("2026-01-01T00:00:00|00000000-0000-0000-0000-000000000000"),  # naive
        _cursor("not-a-date|00000000-0000-0000-0000-000000000000"),
        _cursor("a|b|c"),
        base64.urlsafe_b64encode(b"\xff\xfe|\x00").decode(),
    ]:
        assert_error(api_client.get(path, params={"cursor": cursor}), 422, "cursor")
    assert_error(api_client.get(path, params={"cursor": "a" * 201}), 422, "query.cursor")
    # Extreme but well-formed positions are simply pages (empty here).
    for edge in ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]:
        cursor = _cursor(f"{edge}|00000000-0000-0000-0000-000000000000")
        assert api_client.get(path, params={"cursor": cursor}).status_code == 200


def test_numbers_out_of_range_are_refused(api_client: httpx.Client, alice: str) -> None:
    for limit in ["0", "-1", "201", str(10**30), "1e3", "NaN", "1.5", ""]:
        response = api_client.get("/api/jobs", params={"limit": limit})
        assert_error(response, 422, "query.limit")
    headers = {"Content-Type": "application/json"}
    backfill = "/api/jobs/backfill-account/alice"
    for days in ["0", "-1", "366", str(10**30), "1e400", "-1e400", "NaN", "1.5", "null", "[]"]:
        response = api_client.post(backfill, content=f'{{"days": {days}}}', headers=headers)
        assert_error(response, 422, "body.days")
    many_digits = api_client.post(
        backfill, content=b'{"days": ' + b"9" * 5000 + b"}", headers=headers
    )
    assert_error(many_digits, 422, "too many digits")
    metrics = "/api/accounts/alice/metrics"
    assert_error(api_client.get(metrics, params={"from": "0000-01-01"}), 422, "query.from")
    assert_error(api_client.get(metrics, params={"to": "10000-01-01"}), 422, "query.to")
    assert_error(
        api_client.get(metrics, params={"from": "0001-01-01", "to": "9999-12-31"}), 422, "days"
    )
    for job_id in ["0", "-1", "1" * 40, "00000000-0000-0000-0000-00000000000g"]:
        assert_error(api_client.get(f"/api/jobs/{job_id}"), 422, "path.job_id")


def test_error_kinds_name_unknown_routes_and_methods(api_client: httpx.Client) -> None:
    assert_error(api_client.get("/api/nothing-here"), 404, "no route GET /api/nothing-here")
    response = api_client.put("/api/jobs")
    assert_error(response, 405, "PUT", "allowed: GET")
    assert response.json()["error"] == "method_not_allowed"


def test_settings_refuse_a_body_limit_too_small_to_be_useful() -> None:
    with pytest.raises(ValueError, match="api_max_body_bytes"):
        Settings(api_tokens=[SecretStr("x")], api_max_body_bytes=10)
