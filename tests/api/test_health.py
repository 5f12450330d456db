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
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_and_job_routes_answer_503_when_redis_is_down(api_settings: Settings) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    settings = api_settings.model_copy(update={"celery_broker_url": SecretStr(dead_redis)})
    token = settings.api_tokens[0].get_secret_value()
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"database": "ok", "broker": "unreachable"}
        started = client.post("/api/jobs/scrape-all")
        assert started.status_code == 503
        assert "Redis" in started.json()["detail"]
        # The job row was committed before the send failed; it must not stay pending forever.
        failed = client.get("/api/jobs", params={"status": "failed"}).json()["items"]
        assert failed
        assert "broker is unreachable" in failed[0]["error_message"]
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
