"""Where the tests' PostgreSQL and Redis come from, and a private database / Redis db per run.

Order: TEST_DATABASE_URL / TEST_REDIS_URL when set; else testcontainers when a Docker engine
answers; else the local services on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from sqlalchemy import make_url

from gristmill.settings import Settings

LOCAL_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
_LOCK_PREFIX = "gristmill:test-run-lock:"


@dataclass(frozen=True)
class ServerURLs:
    database_server_url: str
    redis_server_url: str


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@contextlib.contextmanager
def server_urls() -> Iterator[ServerURLs]:
    database_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if database_url and redis_url:
        yield ServerURLs(database_url, redis_url)
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer
        from testcontainers.redis import RedisContainer

        with (
            PostgresContainer("postgres:16-alpine", driver="psycopg") as pg,
            RedisContainer("redis:7-alpine") as rd,
        ):
            host, port = rd.get_container_host_ip(), rd.get_exposed_port(6379)
            yield ServerURLs(
                database_url or pg.get_connection_url(), redis_url or f"redis://{host}:{port}/0"
            )
        return
    yield ServerURLs(database_url or LOCAL_DATABASE_URL, redis_url or LOCAL_REDIS_URL)


def private_database_url(server_url: str, label: str) -> str:
    name = f"gristmill_test_{label}_{uuid.uuid4().hex[:8]}"
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


# A reservation is a lease: held while its run refreshes it, gone a minute after the run dies
# (a killed run must not keep a database number for hours; there are only fifteen).
_LEASE_SECONDS = 60
_RENEW_SECONDS = 15
_WAIT_FOR_A_FREE_DATABASE_SECONDS = 300


def _reserve_database(base: redis.Redis, token: str) -> int:
    deadline = time.monotonic() + _WAIT_FOR_A_FREE_DATABASE_SECONDS
    while True:
        for number in range(15, 0, -1):
            if base.set(f"{_LOCK_PREFIX}{number}", token, nx=True, ex=_LEASE_SECONDS):
                return number
        if time.monotonic() > deadline:
            raise RuntimeError("no free Redis database (1-15) for this test run")
        time.sleep(1)  # other runs hold all fifteen: wait for one to end


def _renew(base: redis.Redis, key: str, token: str, stop: threading.Event) -> None:
    while not stop.wait(_RENEW_SECONDS):
        with contextlib.suppress(redis.RedisError):
            if base.get(key) == token.encode():
                base.expire(key, _LEASE_SECONDS)


@contextlib.contextmanager
def private_redis_url(server_url: str) -> Iterator[str]:
    """Reserve a Redis database number nobody else's test run is using, and flush it after."""
    base = redis.Redis.from_url(server_url)
    token = uuid.uuid4().hex
    chosen = _reserve_database(base, token)
    key = f"{_LOCK_PREFIX}{chosen}"
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(base, key, token, stop), daemon=True)
    renewer.start()
    redis_url = urlsplit(server_url)._replace(path=f"/{chosen}").geturl()
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield redis_url
    finally:
        stop.set()
        renewer.join(5)
        client.flushdb()
        client.close()
        if base.get(key) == token.encode():
            base.delete(key)
        base.close()


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """The Settings a Gristmill process started with `env` would build."""
    names = Settings.model_fields.keys()
    return Settings.model_validate({k.lower(): v for k, v in env.items() if k.lower() in names})
