"""No secret in any log, nor in any answer: the whole stack (api, every worker pool, beat, and
the `gristmill` commands) runs at DEBUG against a PostgreSQL and a Redis of its own that both
need a password, is driven through failures (bad tokens, an unknown account, a job that fails,
Redis gone mid-run, a wrong database password), and then every line every process wrote is
searched for the tokens and the passwords."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gristmill.migrations.runner import create_database, upgrade
from tests.fakeplatform import FakePlatform
from tests.support.jobs import register_mastodon, wait_for_job
from tests.support.private_services import PrivateRedis, private_postgres, private_redis
from tests.support.stack import REPO_ROOT, Stack, free_port, wait_until

pytestmark = pytest.mark.integration

# Random, so that finding one in a log cannot be a coincidence.
PG_PASSWORD = f"pg-{secrets.token_hex(12)}"
REDIS_PASSWORD = f"redis-{secrets.token_hex(12)}"
WRONG_PG_PASSWORD = f"wrongpg-{secrets.token_hex(12)}"
WRITE_TOKEN = f"write-{secrets.token_hex(16)}"
READ_TOKEN = f"read-{secrets.token_hex(16)}"
WRONG_TOKEN = f"wrong-{secrets.token_hex(16)}"
SECRETS = {
    "PostgreSQL password": PG_PASSWORD,
    "Redis password": REDIS_PASSWORD,
    "wrong PostgreSQL password": WRONG_PG_PASSWORD,
    "write token": WRITE_TOKEN,
    "read token": READ_TOKEN,
    "wrong token": WRONG_TOKEN,
}


def _find_secrets(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


@pytest.fixture
def secret_redis() -> Iterator[PrivateRedis]:
    with private_redis(password=REDIS_PASSWORD) as server:
        yield server


@pytest.fixture
def secret_env(
    secret_redis: PrivateRedis, tmp_path: Path, fake_platform: FakePlatform
) -> Iterator[dict[str, str]]:
    with private_postgres(password=PG_PASSWORD) as postgres:
        database_url = postgres.database_url("gristmill")
        create_database(database_url)
        upgrade(database_url)
        yield {
            **{k: v for k, v in os.environ.items() if not k.startswith("TEST_")},
            "DATABASE_URL": database_url,
            "REDIS_URL": secret_redis.url,
            "API_TOKENS": WRITE_TOKEN,
            "API_READ_TOKENS": READ_TOKEN,
            "LOG_LEVEL": "DEBUG",
            "LOG_JSON": "true",
            "SCRAPER_ALLOW_PRIVATE_NETWORKS": "true",
            "SCRAPER_TIMEOUT_SECONDS": "5",
            "TASK_MAX_RETRIES": "0",
            "PORT": str(free_port()),
            "BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
            "BEAT_HEARTBEAT_FILE": str(tmp_path / "beat.heartbeat"),
            "WORKER_HEARTBEAT_FILE": str(tmp_path / "worker.heartbeat"),
        }


def _gristmill(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "gristmill"), *args]
    return subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_no_token_or_password_in_any_log_or_answer(
    secret_env: dict[str, str],
    secret_redis: PrivateRedis,
    fake_platform: FakePlatform,
    tmp_path: Path,
) -> None:
    outputs: list[str] = []
    migrate = _gristmill(secret_env, "migrate")
    assert migrate.returncode == 0, migrate.stderr
    outputs.append(migrate.stdout + migrate.stderr)
    wrong_url = secret_env["DATABASE_URL"].replace(PG_PASSWORD, WRONG_PG_PASSWORD)
    refused = _gristmill({**secret_env, "DATABASE_URL": wrong_url}, "migrate")
    assert refused.returncode != 0
    assert "password authentication failed" in refused.stdout + refused.stderr
    outputs.append(refused.stdout + refused.stderr)

    stack = Stack(env=secret_env, log_dir=tmp_path / "logs")
    stack.log_dir.mkdir()
    stack.start_all()
    answers: list[str] = []
    try:
        with httpx.Client(base_url=stack.api_url, timeout=10) as client:
            write = {"Authorization": f"Bearer {WRITE_TOKEN}"}
            read = {"Authorization": f"Bearer {READ_TOKEN}"}
            wrong = {"Authorization": f"Bearer {WRONG_TOKEN}"}

            def call(method: str, path: str, **kwargs: object) -> httpx.Response:
                response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
                answers.append(f"{response.status_code} {response.headers} {response.text}")
                return response

            assert call("GET", "/api/jobs").status_code == 401
            assert call("GET", "/api/jobs", headers=wrong).status_code == 401
            assert call("POST", "/api/jobs/scrape-all", headers=read).status_code == 403
            missing = call("POST", "/api/jobs/scrape-account/nobody", headers=write)
            assert missing.status_code == 404
            assert (
                call("POST", "/api/accounts", headers=write, json={"key": "x"}).status_code == 422
            )

            client.headers.update(write)
            register_mastodon(client, fake_platform, "alice")
            fine = call("POST", "/api/jobs/scrape-account/alice").json()
            assert wait_for_job(client, fine["job_id"], timeout=60)["status"] == "completed"
            # An account the platform does not know: the job fails for good.
            call(
                "POST",
                "/api/accounts",
                json={
                    "key": "ghost",
                    "platform": "mastodon",
                    "handle": "ghost@fake.social",
                    "base_url": fake_platform.url,
                },
            )
            failing = call("POST", "/api/jobs/scrape-account/ghost").json()
            assert wait_for_job(client, failing["job_id"], timeout=60)["status"] == "failed"
            assert call("GET", "/readyz").status_code == 200

            # Redis goes away mid-run: the api still takes work; everything that talks to
            # Redis logs its connection errors.
            secret_redis.stop()
            assert call("POST", "/api/jobs/scrape-account/alice?force=true").status_code == 202
            ready = call("GET", "/readyz")
            assert ready.json()["checks"]["broker"] == "unreachable"
            wait_until(
                lambda: all(
                    "Error" in stack.log(name) or "error" in stack.log(name)
                    for name in ("worker_high", "scheduler")
                ),
                timeout=30,
                what="the worker and beat to log losing Redis",
            )
            call("GET", "/api/jobs")
    finally:
        stack.stop_all()
        if secret_redis.process is None:
            secret_redis.start()

    logs = {path.name: path.read_text(errors="replace") for path in stack.log_dir.iterdir()}
    assert set(logs) >= {"api.log", "worker_high.log", "worker_low.log", "scheduler.log"}
    # DEBUG really was on, and the processes did write their connection URLs: masked.
    assert all('"level": "debug"' in text for text in logs.values()), logs
    assert "redis://:**@127.0.0.1" in logs["worker_high.log"]
    leaks = {name: _find_secrets(text) for name, text in logs.items() if _find_secrets(text)}
    for index, output in enumerate(outputs):
        if _find_secrets(output):
            leaks[f"gristmill migrate #{index}"] = _find_secrets(output)
    assert leaks == {}
    assert [answer for answer in answers if _find_secrets(answer)] == []
