"""Garbage-collector thresholds for the api and worker processes.

With CPython's defaults (700, 10, 10) a busy api process runs a full collection every few
hundred requests, and a full collection walks every object the process holds (SQLAlchemy
metadata, pydantic models, the OpenAPI schema, the console's state): tens of milliseconds in
which no request is served, which is where the start endpoint's slowest answers came from.
A request's garbage is short-lived and almost all freed by reference counting, so collecting
far less often costs little memory. Measured by `make bench` (32 clients, 2 cores): p99
137 ms with the defaults, 30 ms with these; 1,201 and 1,716 requests per second. A worker's
pool process running a batch of 200 concurrent requests holds many objects too: scrape-all at
100 ms platform latency went from about 560 to about 620 accounts a second.
"""

from __future__ import annotations

import gc

API_GC_THRESHOLDS = (20_000, 20, 20)


def tune_for_serving() -> None:
    gc.set_threshold(*API_GC_THRESHOLDS)
