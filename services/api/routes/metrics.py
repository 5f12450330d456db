"""GET /metrics: Prometheus text exposition for the api process, without authentication.

Serves the cluster-wide gauges (queue depth, workers, dead letters, jobs; identical on every
api replica: aggregate them with max()), the task messages this process published, and the
process / Python runtime collectors.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from gristmill.db import get_database
from gristmill.observability.cluster import ClusterCollector
from gristmill.observability.platforms import PlatformCollector

router = APIRouter()

_REGISTRY_ATTR = "metrics_registry"
_build_lock = threading.Lock()


class _ProcessMetrics(Collector):
    """The process-wide default registry: runtime collectors and celery_task_sent_total."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def _registry(app: FastAPI) -> CollectorRegistry:
    # Built on the first scrape, per app: the settings come from app.state, and tests build
    # several apps in one process, each of which needs its own cluster collector.
    registry: CollectorRegistry | None = getattr(app.state, _REGISTRY_ATTR, None)
    if registry is not None:
        return registry
    with _build_lock:
        registry = getattr(app.state, _REGISTRY_ATTR, None)
        if registry is None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_ProcessMetrics())
            registry.register(ClusterCollector(get_database, app.state.settings.broker_url))
            registry.register(PlatformCollector(app.state.settings.redis_url.get_secret_value()))
            setattr(app.state, _REGISTRY_ATTR, registry)
    return registry


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    # A plain `def`: collecting does blocking Redis and database reads, so FastAPI runs it in
    # its thread pool instead of the event loop.
    return Response(generate_latest(_registry(request.app)), media_type=CONTENT_TYPE_LATEST)
