"""Platform hosts' breaker and pause gauges, served by the api from Redis."""

from __future__ import annotations

import redis
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from gristmill.observability.platforms import PlatformCollector
from gristmill.settings import Settings
from tests.observability.support import parse_exposition, value
from tests.scrapers.seed import open_circuit, pause_host


def _scrape(redis_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry(auto_describe=True)
    collector = PlatformCollector(redis_url)
    registry.register(collector)
    try:
        return parse_exposition(generate_latest(registry).decode())
    finally:
        collector.close()


def test_hosts_in_trouble_get_series_and_every_state_is_counted(
    test_settings: Settings, redis_client: redis.Redis
) -> None:
    url = test_settings.redis_url.get_secret_value()
    open_circuit(test_settings, "down.example", "mastodon")
    pause_host(test_settings, "public.api.bsky.app", "bluesky", 60, "rate_limit_exhausted")
    pause_host(test_settings, "fine.example", "mastodon", 0, "retry_after")

    samples = _scrape(url)

    assert value(samples, "gristmill_platform_state_up") == 1
    assert value(samples, "gristmill_platform_hosts", platform="mastodon", state="open") == 1
    assert value(samples, "gristmill_platform_hosts", platform="mastodon", state="closed") == 1
    assert value(samples, "gristmill_platform_hosts", platform="bluesky", state="closed") == 1
    assert value(samples, "gristmill_platform_hosts", platform="bluesky", state="half_open") == 0
    assert (
        value(samples, "gristmill_platform_circuit_open", platform="mastodon", host="down.example")
        == 1
    )
    # Healthy hosts have no per-host series (a fleet of instances stays a few series).
    hosts = {dict(labels).get("host") for (name, labels) in samples if "host" in dict(labels)}
    assert hosts == {"down.example", "public.api.bsky.app"}
    paused = value(
        samples,
        "gristmill_platform_paused_seconds",
        platform="bluesky",
        host="public.api.bsky.app",
        reason="rate_limit_exhausted",
    )
    assert paused is not None
    assert 50 <= paused <= 60


def test_dead_redis_reads_down_without_failing_the_scrape() -> None:
    samples = _scrape("redis://127.0.0.1:1/0")
    assert value(samples, "gristmill_platform_state_up") == 0
    assert value(samples, "gristmill_platform_hosts", platform="mastodon", state="open") is None


def test_api_metrics_route_serves_platform_state(api: TestClient) -> None:
    samples = parse_exposition(api.get("/metrics", headers={"Authorization": ""}).text)
    assert value(samples, "gristmill_platform_state_up") == 1
    assert value(samples, "gristmill_platform_hosts", platform="bluesky", state="open") == 0
