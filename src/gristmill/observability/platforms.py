"""Platform hosts' circuit breakers and pauses, read from Redis at scrape time (api).

Every api replica exports the same values: aggregate with max() across api pods. Per-host
series exist only for hosts in trouble (circuit not closed, or paused), so a fleet of many
Mastodon instances costs a handful of series; `gristmill_platform_hosts` counts them all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gristmill.scrapers.base import PLATFORMS
from gristmill.scrapers.hoststate import BREAKER_STATES, CLOSED, HostState, read_host_states

logger = logging.getLogger(__name__)


class PlatformCollector(Collector):
    """Breaker states and pauses of every platform host workers talked to in the last day."""

    def __init__(self, redis_url: str, *, timeout_seconds: float = 2.0) -> None:
        self._redis = redis.Redis.from_url(
            redis_url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )

    def describe(self) -> Iterable[Metric]:
        # Names only: registering must not touch Redis.
        return list(_families(None))

    def collect(self) -> Iterable[Metric]:
        try:
            states: list[HostState] | None = read_host_states(self._redis)
        except (redis.RedisError, OSError):
            logger.warning("metrics: reading platform host state failed", exc_info=True)
            states = None
        return list(_families(states))

    def close(self) -> None:
        self._redis.close()


def _families(states: list[HostState] | None) -> Iterable[Metric]:
    up = GaugeMetricFamily(
        "gristmill_platform_state_up",
        "1 if the platform hosts' breaker and rate-limit state could be read from Redis.",
    )
    hosts = GaugeMetricFamily(
        "gristmill_platform_hosts",
        "Platform hosts by circuit breaker state (closed, open, half_open).",
        labels=["platform", "state"],
    )
    circuit_open = GaugeMetricFamily(
        "gristmill_platform_circuit_open",
        "1 for each host whose circuit breaker is open or half-open: its jobs are waiting.",
        labels=["platform", "host"],
    )
    paused = GaugeMetricFamily(
        "gristmill_platform_paused_seconds",
        "Seconds left of a pause the host asked every worker for (Retry-After, RateLimit).",
        labels=["platform", "host", "reason"],
    )
    up.add_metric([], 0.0 if states is None else 1.0)
    if states is not None:
        counts = {(platform, state): 0 for platform in PLATFORMS for state in BREAKER_STATES}
        now = time.time()
        for state in states:
            key = (state.platform, state.breaker_state)
            counts[key] = counts.get(key, 0) + 1
            if state.breaker_state != CLOSED:
                circuit_open.add_metric([state.platform, state.host], 1.0)
            if state.paused_until is not None and state.pause_reason is not None:
                remaining = max(0.0, state.paused_until.timestamp() - now)
                paused.add_metric([state.platform, state.host, state.pause_reason], remaining)
        for (platform, breaker_state), count in sorted(counts.items()):
            hosts.add_metric([platform, breaker_state], count)
    return (up, hosts, circuit_open, paused)
