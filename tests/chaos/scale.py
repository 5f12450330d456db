"""How big a chaos run is: `CHAOS_SCALE=full` (make chaos) or the short default (make test).

The short scale keeps every scenario inside `make test`'s budget on a 2-core machine (the six
together in about 90 s); the full scale is the one issue 8 asks for: a few hundred jobs and a
30 s SIGKILL storm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    # Accounts with a single scrape each, and accounts with a backfill each; one fan-out
    # scrape-platform covers all of them.
    scrapes: int
    backfills: int
    backfill_days: int
    # Seconds the fake platform takes per request in the storm: the work outlasts the storm.
    storm_latency: float
    # Seconds each fault lasts.
    storm_seconds: float
    postgres_down_seconds: float
    redis_down_seconds: float
    schedulers_seconds: float
    outage_seconds: float
    # Seconds every job may take to drain once the fault is over.
    drain_timeout: float


SHORT = Scale(
    name="short",
    scrapes=10,
    backfills=3,
    backfill_days=5,
    storm_latency=0.05,
    storm_seconds=5,
    postgres_down_seconds=3,
    redis_down_seconds=1,
    schedulers_seconds=6,
    outage_seconds=4,
    drain_timeout=60,
)

FULL = Scale(
    name="full",
    scrapes=150,
    backfills=30,
    backfill_days=30,
    storm_latency=0.25,
    storm_seconds=30,
    postgres_down_seconds=30,
    redis_down_seconds=10,
    # Two minute boundaries, so the every-minute cron entry fires in both schedulers twice.
    schedulers_seconds=125,
    outage_seconds=60,
    drain_timeout=240,
)


def current_scale() -> Scale:
    # The test process's own knob, not a Gristmill setting (the processes never see it).
    name = os.environ.get("CHAOS_SCALE", "short")
    scales = {scale.name: scale for scale in (SHORT, FULL)}
    if name not in scales:
        raise ValueError(f"CHAOS_SCALE must be one of {sorted(scales)}, not {name!r}")
    return scales[name]
