from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from gristmill.clock import utc_now
from gristmill.db import Database
from gristmill.metrics.models import DailyActivityRow, MetricSnapshot
from tests.conftest import read_only_headers
from tests.factories import make_account

MASTODON = {"key": "alice", "platform": "mastodon", "handle": "alice@fake.social"}


def test_register_get_list_delete_account(api: TestClient) -> None:
    created = api.post("/api/accounts", json=MASTODON)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"] == "alice"
    assert body["active"] is True
    assert body["base_url"] is None
    assert created.headers["Location"] == "/api/accounts/alice"

    api.post(
        "/api/accounts", json={"key": "bob", "platform": "bluesky", "handle": "bob.bsky.social"}
    )
    assert [a["key"] for a in api.get("/api/accounts").json()] == ["alice", "bob"]
    assert [a["key"] for a in api.get("/api/accounts?platform=bluesky").json()] == ["bob"]
    assert api.get("/api/accounts/alice").json()["handle"] == "alice@fake.social"

    assert api.delete("/api/accounts/alice").status_code == 204
    missing = api.get("/api/accounts/alice")
    assert missing.status_code == 404
    assert "alice" in missing.json()["detail"]


def test_duplicate_key_is_a_conflict(api: TestClient) -> None:
    assert api.post("/api/accounts", json=MASTODON).status_code == 201
    again = api.post("/api/accounts", json=MASTODON)
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]


def test_invalid_accounts_are_rejected_with_a_reason(api: TestClient) -> None:
    cases = [
        ({**MASTODON, "platform": "myspace"}, "unknown platform"),
        ({**MASTODON, "handle": "no-instance"}, "user@instance"),
        ({**MASTODON, "key": "Not A Slug!"}, "key"),
        ({"key": "x", "platform": "mastodon"}, "handle"),
        ({**MASTODON, "surprise": 1}, "surprise"),
    ]
    for payload, reason in cases:
        response = api.post("/api/accounts", json=payload)
        assert response.status_code == 422, payload
        assert reason in response.text, (payload, response.text)
    assert api.get("/api/accounts").json() == []


def test_unsafe_base_url_is_rejected_unless_private_networks_are_allowed(
    api: TestClient, api_settings: object
) -> None:
    from services.api.app import create_app

    strict = api_settings.model_copy(update={"scraper_allow_private_networks": False})  # type: ignore[attr-defined]
    with TestClient(create_app(strict), headers=dict(api.headers)) as client:
        for url in (
            "http://93.184.215.14",
            "https://127.0.0.1",
            "https://10.1.2.3",
            "https://169.254.169.254",
            "https://[::1]",
        ):
            response = client.post("/api/accounts", json={**MASTODON, "base_url": url})
            assert response.status_code == 422, url
            assert "base_url" in response.json()["detail"]
        ok = client.post("/api/accounts", json={**MASTODON, "base_url": "https://93.184.215.14"})
        assert ok.status_code == 201, ok.text
    # The default test settings allow private networks (the fake platform runs on loopback).
    local = api.post(
        "/api/accounts", json={**MASTODON, "key": "b", "base_url": "http://127.0.0.1:9"}
    )
    assert local.status_code == 201


def test_metrics_are_returned_in_date_order_within_the_range(
    api: TestClient, clean_db: Database
) -> None:
    today = date(2026, 11, 20)
    with clean_db.transaction() as session:
        account = make_account(session)
        _store_days(session, account.id, today)
    response = api.get(
        "/api/accounts/alice/metrics",
        params={"from": str(today - timedelta(days=2)), "to": str(today - timedelta(days=1))},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["account_key"] == "alice"
    assert [s["date"] for s in body["snapshots"]] == ["2026-11-18", "2026-11-19"]
    assert body["snapshots"][0]["followers"] == 1002
    assert set(body["snapshots"][0]) == {"date", "followers", "following", "posts", "captured_at"}
    assert [d["date"] for d in body["daily"]] == ["2026-11-18", "2026-11-19"]
    assert body["daily"][1] == {
        "date": "2026-11-19",
        "posts": 1,
        "likes": 10,
        "reposts": 2,
        "replies": 3,
    }
    everything = api.get("/api/accounts/alice/metrics").json()
    assert len(everything["snapshots"]) == 5


def test_metrics_errors(api: TestClient, clean_db: Database) -> None:
    with clean_db.transaction() as session:
        make_account(session)
    assert api.get("/api/accounts/nobody/metrics").status_code == 404
    reversed_range = api.get("/api/accounts/alice/metrics?from=2026-11-20&to=2026-11-01")
    assert reversed_range.status_code == 422
    assert "must not be after" in reversed_range.json()["detail"]
    bad_date = api.get("/api/accounts/alice/metrics?from=yesterday")
    assert bad_date.status_code == 422
    assert bad_date.json()["detail"][0]["location"] == "query.from"


def test_read_only_token_reads_but_cannot_write(api: TestClient) -> None:
    headers = read_only_headers()
    assert api.get("/api/accounts", headers=headers).status_code == 200
    denied = api.post("/api/accounts", json=MASTODON, headers=headers)
    assert denied.status_code == 403
    assert "read-only" in denied.json()["detail"]
    assert api.delete("/api/accounts/alice", headers=headers).status_code == 403


def _store_days(session: Session, account_id: int, today: date) -> None:
    now = utc_now()
    for offset in range(5):
        day = today - timedelta(days=4 - offset)
        session.add(
            MetricSnapshot(
                account_id=account_id,
                date=day,
                followers=1000 + offset,
                following=50,
                posts=200 + offset,
                captured_at=now,
            )
        )
        session.add(
            DailyActivityRow(
                account_id=account_id,
                date=day,
                posts=offset % 2,
                likes=10 * (offset % 2),
                reposts=2 * (offset % 2),
                replies=3 * (offset % 2),
                captured_at=now,
            )
        )


def test_bytes_the_database_refuses_are_a_422_not_a_500(api: TestClient) -> None:
    for method, path in (
        ("GET", "/api/accounts/a%00b"),
        ("GET", "/api/accounts?platform=a%00b"),
        ("GET", "/api/jobs?account_key=a%00b"),
        ("POST", "/api/jobs/scrape-account/a%00b"),
    ):
        response = api.request(method, path)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"] == "invalid_input"
