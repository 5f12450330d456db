"""The api process collects garbage rarely: a full collection stalls every request it holds."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from gristmill.gc_tuning import API_GC_THRESHOLDS


def test_the_started_api_raises_the_collector_thresholds(api: TestClient) -> None:
    assert api.get("/healthz").status_code == 200
    assert gc.get_threshold() == API_GC_THRESHOLDS
    assert API_GC_THRESHOLDS[0] > 700 * 10  # far above CPython's default first threshold
