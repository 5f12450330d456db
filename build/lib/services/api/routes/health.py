from __future__ import annotations

import redis
from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from gristmill.db import get_database
from services.api.deps import SettingsDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (liveness)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(settings: SettingsDep) -> JSONResponse:
    """Ready while PostgreSQL answers; 503 naming what does not. The broker's state is
    reported but does not make the api unready: jobs are accepted while Redis is down (the
    outbox sends them when it is back), so a broker blip must not take every api pod out."""
    checks: dict[str, str] = {}
    try:
        with get_database().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unreachable"
    client = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
        checks["broker"] = "ok"
    except redis.RedisError:
        checks["broker"] = "unreachable"
    finally:
        client.close()
    ready = checks["database"] == "ok"
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
    )
