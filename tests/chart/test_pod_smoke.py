"""The rendered pods, run as local processes, process a job end to end.

Takes the chart's own containers - the migration Job (create-db + migrate), the wait-for-db
initContainer, the api, every worker pool and the scheduler - resolves their env from the
rendered ConfigMap/Secret exactly as the kubelet would, expands `$(VAR)` in their args, swaps
in a private PostgreSQL database and Redis db (TEST_DATABASE_URL / TEST_REDIS_URL or the local
services, see tests/support/services.py) and local ports/paths, and runs them from the repo's
.venv. A scrape submitted through the api must complete, and the liveness probes the chart
declares must pass against the real heartbeat files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakeplatform import FakePlatform
from tests.support.jobs import register_mastodon, start, wait_for_job
from tests.support.services import private_database_url, private_redis_url, server_urls
from tests.support.stack import free_port, wait_until

from .helpers import KEDA_POSTGRESQL, REPO_ROOT, by_kind, containers, get, pod_spec, render_chart
from .pods import command_line, resolve_env

pytestmark = pytest.mark.integration

TOKEN = "smoke-write-token-0123456789"
VALUES: dict[str, Any] = {
    "secrets": {"apiTokens": TOKEN},
    # The fake platform listens on 127.0.0.1.
    "config": {"SCRAPER_ALLOW_PRIVATE_NETWORKS": True, "LOG_JSON": False},
}
APP = ("api", "worker-high", "worker-default", "worker-low", "scheduler")


def _run_to_completion(argv: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{what} failed ({argv}):\n{result.stdout}\n{result.stderr}"


class Pods:
    """Rendered containers as local processes, each in its own session (process group)."""

    def __init__(self, docs: list[dict[str, Any]], workdir: Path, overrides: dict[str, str]):
        self.docs, self.workdir, self.overrides = docs, workdir, overrides
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.envs: dict[str, dict[str, str]] = {}

    def env_for(self, name: str, container: dict[str, Any]) -> dict[str, str]:
        env = resolve_env(self.docs, container)
        env.update(self.overrides)
        # Per-process paths and ports that would be per-pod in the cluster.
        local = self.workdir / name
        local.mkdir(exist_ok=True)
        env["WORKER_HEARTBEAT_FILE"] = str(local / "worker.heartbeat")
        env["BEAT_HEARTBEAT_FILE"] = str(local / "beat.heartbeat")
        env["BEAT_SCHEDULE_FILE"] = str(local / "beat-schedule")
        env["WORKER_METRICS_PORT"] = str(free_port())
        env["SCHEDULER_METRICS_PORT"] = str(free_port())
        if "PROMETHEUS_MULTIPROC_DIR" in env:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(local / "prometheus")
        env["HOME"] = env["TMPDIR"] = str(local)
        bin_dir = REPO_ROOT / ".venv" / "bin"
        env["PATH"] = f"{bin_dir}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        return env

    def run_job(self, deployment_kind: str, name: str) -> None:
        doc = get(self.docs, deployment_kind, name)
        for cname, container in containers(doc).items():
            env = self.env_for(f"{name}-{cname}", container)
            _run_to_completion(command_line(container, env), env, f"{name}/{cname}")

    def start(self, name: str) -> None:
        doc = get(self.docs, "Deployment", name)
        spec = pod_spec(doc)
        for init in spec.get("initContainers", []):
            env = self.env_for(f"{name}-{init['name']}", init)
            _run_to_completion(command_line(init, env), env, f"{name}/{init['name']}")
        (main,) = spec["containers"]
        env = self.env_for(name, main)
        self.envs[name] = env
        log = (self.workdir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command_line(main, env),
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def probe(self, name: str, probe: str) -> bool:
        """Run the container's exec probe, with the heartbeat paths of this local process."""
        doc = get(self.docs, "Deployment", name)
        (main,) = pod_spec(doc)["containers"]
        command = list(main[probe]["exec"]["command"])
        rendered_env = resolve_env(self.docs, main)
        for key in ("WORKER_HEARTBEAT_FILE", "BEAT_HEARTBEAT_FILE"):
            command[-1] = command[-1].replace(rendered_env[key], self.envs[name][key])
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[Pods]:
    from gristmill.migrations.runner import drop_database

    docs = render_chart(VALUES | {"migrations": {"createDatabase": True}})
    with server_urls() as servers, private_redis_url(servers.redis_server_url) as redis_url:
        database_url = private_database_url(servers.database_server_url, "chart_smoke")
        overrides = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PORT": str(free_port()),
        }
        running = Pods(docs, tmp_path, overrides)
        try:
            yield running
        finally:
            running.stop()
            drop_database(database_url)


def test_rendered_pods_complete_a_job(pods: Pods, fake_platform: FakePlatform) -> None:
    # The migration Job: gristmill create-db (initContainer) then gristmill migrate; twice, as
    # an upgrade would (it must be safe to re-run).
    pods.run_job("Job", "migrate")
    pods.run_job("Job", "migrate")
    for name in APP:
        pods.start(name)  # runs the wait-for-db initContainer first

    api_url = f"http://127.0.0.1:{pods.overrides['PORT']}"

    def api_ready() -> bool:
        if pods.processes["api"].poll() is not None:
            raise AssertionError(f"api exited:\n{pods.log('api')}")
        try:
            return httpx.get(f"{api_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(api_ready, timeout=60, what="the api's /readyz")

    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=10) as client:
        register_mastodon(client, fake_platform, "smoke", followers=4242)
        job = wait_for_job(client, start(client, "/api/jobs/scrape-account/smoke"), timeout=90)
        assert job["status"] == "completed", (job, pods.log("worker-high"))
        assert job["result"]["followers"] == 4242

        fan_out = start(client, "/api/jobs/scrape-all")
        parent = wait_for_job(client, fan_out, timeout=90)
        assert parent["status"] == "completed", (parent, pods.log("worker-default"))

        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert "celery_queue_length" in metrics.text

    for name in APP:
        assert pods.processes[name].poll() is None, f"{name} exited:\n{pods.log(name)}"
    for pool in ("worker-high", "worker-default", "worker-low"):
        wait_until(
            lambda pool=pool: pods.probe(pool, "livenessProbe"),
            timeout=30,
            what=f"{pool}'s liveness probe",
        )
        port = pods.envs[pool]["WORKER_METRICS_PORT"]
        # The metrics server starts once the worker is ready; give it the same deadline.
        wait_until(
            lambda port=port: _answers(f"http://127.0.0.1:{port}/metrics"),
            timeout=30,
            what=f"{pool}'s metrics endpoint",
        )
    wait_until(
        lambda: pods.probe("scheduler", "livenessProbe"),
        timeout=60,
        what="the scheduler's liveness probe",
    )
    # Beat's own metrics, on the port the chart declares (SCHEDULER_METRICS_PORT).
    port = pods.envs["scheduler"]["SCHEDULER_METRICS_PORT"]
    wait_until(
        lambda: _answers(f"http://127.0.0.1:{port}/metrics"),
        timeout=30,
        what="the scheduler's metrics endpoint",
    )


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_keda_postgresql_query_runs_against_the_real_schema(pods: Pods) -> None:
    """The alternative KEDA trigger's SQL is valid for the migrated schema (and counts 0)."""
    import psycopg

    pods.run_job("Job", "migrate")
    docs = render_chart(KEDA_POSTGRESQL)
    for scaled in by_kind(docs, "ScaledObject"):
        (trigger,) = scaled["spec"]["triggers"]
        dsn = pods.overrides["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            (count,) = conn.execute(trigger["metadata"]["query"]).fetchone()
        assert count == 0
