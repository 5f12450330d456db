from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from gristmill.settings import Settings
from services.api.app import MissingTokenError, create_app
from tests.support.stack import free_port


def test_healthz_and_readyz_need_no_token(api: TestClient) -> None:
    assert api.get("/healthz", headers={"Authorization": ""}).json() == {"status": "ok"}
    ready = api.get("/readyz", headers={"Authorization": ""})
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_with_redis_down_the_api_stays_ready_and_accepts_jobs(api_settings: Settings) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    settings = api_settings.model_copy(update={"celery_broker_url": SecretStr(dead_redis)})
    token = settings.api_tokens[0].get_secret_value()
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as client:
        ready = client.get("/readyz")
        # A broker blip must not take every api pod out of service: ready, saying why.
        assert ready.status_code == 200
        assert ready.json()["checks"]["broker"] == "unreachable"
        started = client.post("/api/jobs/scrape-all")
        assert started.status_code == 202, started.text
        job = client.get(started.headers["Location"]).json()
        # Committed and waiting in the outbox: the relay sends it once Redis is back.
        assert (job["status"], job["enqueued_at"]) == ("pending", None)
        assert token not in started.text


def test_readyz_and_routes_answer_503_when_postgres_is_down(api_settings: Settings) -> None:
    dead_db = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gristmill"
    settings = api_settings.model_copy(update={"database_url": SecretStr(dead_db)})
    token = settings.api_tokens[0].get_secret_value()
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "unreachable"
        listing = client.get("/api/jobs")
        assert listing.status_code == 503
        assert "PostgreSQL" in listing.json()["detail"]
        assert dead_db not in listing.text


def test_api_refuses_to_start_without_a_token(api_settings: Settings) -> None:
    with pytest.raises(MissingTokenError, match="API_TOKENS"):
        create_app(api_settings.model_copy(update={"api_tokens": []}))
