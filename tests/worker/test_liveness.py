"""The worker's liveness file goes stale when the worker can no longer consume."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.stack import Stack, free_port, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis of this test's own, on a free port, that the test may kill."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed (the CI script installs it)"
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    wait_until(lambda: _pings(client), timeout=10, what="the private redis")
    yield f"redis://127.0.0.1:{port}/0", server
    server.kill()
    server.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _age(path: Path) -> float:
    return time.time() - path.stat().st_mtime


def test_liveness_file_goes_stale_when_the_broker_is_gone(
    test_env: dict[str, str],
    tmp_path: Path,
    private_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    redis_url, server = private_redis
    heartbeat_file = tmp_path / "worker.heartbeat"
    worker = Stack(env={**test_env, "REDIS_URL": redis_url}, log_dir=tmp_path)
    worker.start("worker_high", {"WORKER_HEARTBEAT_FILE": str(heartbeat_file)})
    try:
        wait_until(heartbeat_file.exists, timeout=60, what="the first heartbeat")
        # Alive: touched again and again (Celery's event heartbeat runs every 2 s).
        first = heartbeat_file.stat().st_mtime
        wait_until(lambda: heartbeat_file.stat().st_mtime > first, timeout=15, what="a fresh touch")
        server.kill()
        server.wait(timeout=10)
        # Broker gone: the file is no longer touched; the probe (stale > 60 s) would fail.
        wait_until(lambda: _age(heartbeat_file) > 10, timeout=40, what="a stale file")
        assert worker.processes["worker_high"].poll() is None  # it is stuck, not dead
    finally:
        worker.stop_all()
