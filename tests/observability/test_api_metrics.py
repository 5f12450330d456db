"""The api's GET /metrics and the publish hooks."""

from __future__ import annotations

import json
import socket
import time
import uuid

import redis
from celery import Celery
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from gristmill.celery_app import redis_list_names
from gristmill.db import Database
from gristmill.observability.publish import SENT_AT_HEADER, install_publish_metrics
from gristmill.settings import Settings
from services.api.routes.metrics import router
from tests.observability.support import parse_exposition, value


def _metrics_app(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    app.include_router(router)
    return app


def test_metrics_route_serves_cluster_publish_and_process_metrics(
    test_settings: Settings, test_broker: Celery, database: Database, redis_client: redis.Redis
) -> None:
    install_publish_metrics()
    install_publish_metrics()  # a second start-up call must not count twice
    queue = f"obsq-{uuid.uuid4().hex[:6]}"
    test_broker.send_task("obs.probe", queue=queue, priority=4)

    with TestClient(_metrics_app(test_settings)) as client:
        response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = parse_exposition(response.text)
    sent = {"name": "obs.probe", "hostname": socket.gethostname(), "queue_name": queue}
    assert value(samples, "celery_task_sent_total", **sent) == 1
    assert value(samples, "gristmill_metrics_collector_up", source="redis") == 1
    assert value(samples, "gristmill_metrics_collector_up", source="database") == 1
    assert value(samples, "celery_queue_length", queue_name="high") is not None
    assert value(samples, "gristmill_dead_letters") is not None
    assert any(name == "process_cpu_seconds_total" for name, _ in samples)

    # The message carries its publish time, which the worker turns into the queue wait.
    raw = redis_client.lrange(redis_list_names(queue)[4], 0, -1)
    assert len(raw) == 1
    sent_at = json.loads(raw[0])["headers"][SENT_AT_HEADER]
    assert abs(time.time() - float(sent_at)) < 60


def test_metrics_route_survives_a_dead_redis(test_settings: Settings, database: Database) -> None:
    # Port 1: nothing listens there, the connection is refused at once.
    dead = test_settings.model_copy(
        update={"celery_broker_url": SecretStr("redis://127.0.0.1:1/0")}
    )

    with TestClient(_metrics_app(dead)) as client:
        response = client.get("/metrics")

    assert response.status_code == 200
    samples = parse_exposition(response.text)
    assert value(samples, "gristmill_metrics_collector_up", source="redis") == 0
    assert value(samples, "gristmill_metrics_collector_up", source="database") == 1


def test_api_app_serves_metrics_without_a_token(api: TestClient) -> None:
    response = api.get("/metrics", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 200
    assert "celery_queue_length" in response.text
