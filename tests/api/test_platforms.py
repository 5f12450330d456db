from __future__ import annotations

from datetime import UTC, datetime

import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from gristmill.settings import Settings
from services.api.app import create_app
from tests.scrapers.seed import open_circuit, pause_host
from tests.support.stack import free_port


def test_platforms_lists_each_hosts_breaker_and_rate_limit(
    api: TestClient, api_settings: Settings, redis_client: redis.Redis
) -> None:
    assert api.get("/api/platforms").json()["hosts"] == []
    open_circuit(api_settings, "down.example", "mastodon")
    pause_host(api_settings, "public.api.bsky.app", "bluesky", 120, "retry_after")

    body = api.get("/api/platforms").json()

    settings = api_settings
    assert body["limits"] == {
        name: {
            "requests_per_second": getattr(settings, f"scraper_{name}_requests_per_second"),
            "burst": getattr(settings, f"scraper_{name}_burst"),
        }
        for name in ("mastodon", "bluesky")
    }
    assert body["breaker"] == {
        "failure_threshold": settings.scraper_breaker_failure_threshold,
        "window_seconds": settings.scraper_breaker_window_seconds,
        "open_seconds": settings.scraper_breaker_open_seconds,
        "max_open_seconds": settings.scraper_breaker_max_open_seconds,
    }
    down, bsky = body["hosts"]
    assert down["host"] == "down.example"
    assert down["platform"] == "mastodon"
    assert down["circuit"]["state"] == "open"
    assert down["circuit"]["failures"] == 5
    assert down["circuit"]["opened_count"] == 1
    assert down["circuit"]["last_failure"] == "HTTP 503"
    opens = datetime.fromisoformat(down["circuit"]["open_until"])
    assert 20 <= (opens - datetime.now(UTC)).total_seconds() <= 31
    assert down["rate_limit"]["paused_until"] is None
    # Five admissions took five tokens of the full bucket (refilling since).
    burst = settings.scraper_mastodon_burst
    assert burst - 5 <= down["rate_limit"]["tokens"] <= burst
    assert bsky["host"] == "public.api.bsky.app"
    assert bsky["circuit"]["state"] == "closed"
    assert bsky["rate_limit"]["pause_reason"] == "retry_after"
    paused = datetime.fromisoformat(bsky["rate_limit"]["paused_until"])
    assert 100 <= (paused - datetime.now(UTC)).total_seconds() <= 121


def test_platforms_needs_a_token_and_is_read_only(api: TestClient) -> None:
    assert api.get("/api/platforms", headers={"Authorization": ""}).status_code == 401
    refused = api.post("/api/platforms")
    assert refused.status_code == 405
    assert refused.json()["error"] == "http_error"
    schema = api.get("/openapi.json").json()
    assert "/api/platforms" in schema["paths"]
    assert "PlatformsRead" in schema["components"]["schemas"]


def test_platforms_answers_503_when_redis_is_down(api_settings: Settings) -> None:
    dead = api_settings.model_copy(
        update={"redis_url": SecretStr(f"redis://127.0.0.1:{free_port()}/0")}
    )
    token = dead.api_tokens[0].get_secret_value()
    with TestClient(create_app(dead), headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.get("/api/platforms")
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert "Redis" in response.json()["detail"]
