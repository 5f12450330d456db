"""Browser sign-in: session cookie, CSRF on writes, read-only sessions, security headers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gristmill.db import Database
from gristmill.settings import Settings
from services.api.auth import SESSION_COOKIE, new_session, session_caller
from tests.conftest import READ_TOKEN, WRITE_TOKEN
from tests.factories import make_account


@pytest.fixture
def browser(api_settings: Settings, clean_db: Database) -> Iterator[TestClient]:
    """The app as a browser sees it: no Authorization header, cookies kept."""
    from services.api.app import create_app

    with TestClient(create_app(api_settings), base_url="http://testserver") as client:
        yield client


def _sign_in(client: TestClient, token: str) -> dict[str, str]:
    response = client.post("/api/session", json={"token": token})
    assert response.status_code == 200, response.text
    return response.json()


def test_sign_in_sets_an_httponly_strict_cookie_without_the_token(browser: TestClient) -> None:
    response = browser.post("/api/session", json={"token": WRITE_TOKEN})
    assert response.status_code == 200
    body = response.json()
    assert body["scope"] == "write"
    assert len(body["csrf_token"]) == 64
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert WRITE_TOKEN not in cookie
    assert WRITE_TOKEN not in response.text
    assert response.headers["cache-control"] == "no-store"
    # The cookie alone authenticates reads.
    assert browser.get("/api/accounts").status_code == 200
    assert browser.get("/api/session").json()["csrf_token"] == body["csrf_token"]


def test_wrong_token_is_refused(browser: TestClient) -> None:
    response = browser.post("/api/session", json={"token": "guess"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert "set-cookie" not in response.headers
    assert browser.post("/api/session", json={}).status_code == 422
    assert browser.get("/api/accounts").status_code == 401
    assert browser.get("/api/session").json() == {
        "scope": None,
        "csrf_token": None,
        "expires_at": None,
    }


def test_cookie_writes_need_the_csrf_token_and_the_same_origin(browser: TestClient) -> None:
    csrf = _sign_in(browser, WRITE_TOKEN)["csrf_token"]
    account = {"key": "alice", "platform": "mastodon", "handle": "alice@fake.social"}
    missing = browser.post("/api/accounts", json=account)
    assert missing.status_code == 403
    assert "X-CSRF-Token" in missing.json()["detail"]
    wrong = browser.post("/api/accounts", json=account, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    other_site = browser.post(
        "/api/accounts",
        json=account,
        headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    ok = browser.post(
        "/api/accounts",
        json=account,
        headers={"X-CSRF-Token": csrf, "Origin": "http://testserver"},
    )
    assert ok.status_code == 201, ok.text


def test_read_only_session_cannot_write(browser: TestClient, clean_db: Database) -> None:
    with clean_db.transaction() as session:
        make_account(session)
    body = _sign_in(browser, READ_TOKEN)
    assert body["scope"] == "read"
    refused = browser.post(
        "/api/jobs/scrape-account/alice", headers={"X-CSRF-Token": body["csrf_token"]}
    )
    assert refused.status_code == 403
    assert "read-only" in refused.json()["detail"]
    assert browser.get("/api/jobs").status_code == 200


def test_sign_out_forgets_the_cookie(browser: TestClient) -> None:
    _sign_in(browser, WRITE_TOKEN)
    assert browser.delete("/api/session").status_code == 204
    assert browser.get("/api/accounts").status_code == 401


def test_sessions_expire_and_die_with_their_token(api_settings: Settings) -> None:
    cookie, caller = new_session(api_settings, WRITE_TOKEN, now=1_000_000.0)
    assert caller.scope == "write"
    assert session_caller(api_settings, cookie, now=1_000_001.0) is not None
    later = 1_000_000.0 + api_settings.console_session_hours * 3600 + 1
    assert session_caller(api_settings, cookie, now=later) is None
    rotated = api_settings.model_copy(update={"api_tokens": api_settings.api_read_tokens})
    assert session_caller(rotated, cookie, now=1_000_001.0) is None
    tampered = cookie.rsplit(".", 1)[0] + ".0" + cookie.rsplit(".", 1)[1][1:]
    assert session_caller(api_settings, tampered, now=1_000_001.0) is None
    for junk in ("", "v1", "v1.a.b.c", "v2.x.1.y", "v1.x.notanumber.y"):
        assert session_caller(api_settings, junk) is None


def test_dashboard_is_served_with_a_strict_content_security_policy(browser: TestClient) -> None:
    page = browser.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    script = browser.get("/static/js/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "content-security-policy" in script.headers
    # /docs keeps working: Swagger UI is not under the dashboard's policy.
    assert "content-security-policy" not in browser.get("/docs").headers
