"""The image, run as the chart runs it: migrations, api, a worker pool and the scheduler.

Every container gets the chart's args, env (rendered ConfigMap/Secret), security settings (uid
10001, read-only root filesystem with only the chart's emptyDir mounts writable, all
capabilities dropped, no privilege escalation), memory limit and grace period, against a
private database and Redis db of the test services. A job started through the containerised
api completes in the containerised worker against the fake platform; beat ticks, records and
sends its health check and serves its metrics; SIGTERM stops each container cleanly within its
grace period, letting the worker finish the job it is running.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakeplatform import FakePlatform
from tests.support.jobs import get_job, register_mastodon, start, wait_for_job
from tests.support.services import private_database_url, private_redis_url, server_urls
from tests.support.stack import free_port, wait_until

from ..chart.helpers import get, render_chart
from .conftest import FIGURES
from .podman import ChartPod, image_size_bytes, run_in_image

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

TOKEN = "images-test-write-token-0123456789"
VALUES: dict[str, Any] = {
    "image": {"repository": "localhost/gristmill", "tag": "images-test"},
    "secrets": {"apiTokens": TOKEN},
    # The fake platform listens on 127.0.0.1; beat ticks often enough to be seen.
    "config": {"SCRAPER_ALLOW_PRIVATE_NETWORKS": True, "LOG_JSON": False},
    "extraConfig": {"HEALTH_CHECK_INTERVAL_SECONDS": 2},
    "migrations": {"createDatabase": True},
}
MAX_IMAGE_BYTES = 400_000_000
HEALTH_TASK = "gristmill.health_check"
BEAT_HEARTBEAT = "/tmp/gristmill-beat.heartbeat"


def _sample(text: str, metric: str, **labels: str) -> float:
    """Sum of the samples of `metric` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{metric}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def _get(url: str) -> str:
    try:
        response = httpx.get(url, timeout=3)
    except httpx.HTTPError:
        return ""
    return response.text if response.is_success else ""


class Release:
    """The chart's workloads of one test run, as podman containers."""

    def __init__(self, image: str, workdir: Path, database_url: str, redis_url: str) -> None:
        self.docs = render_chart(VALUES)
        self.image = image
        self.workdir = workdir
        self.ports = {name: free_port() for name in ("api", "worker", "scheduler")}
        self.overrides = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            # Host networking: every process needs a port nobody else on this machine uses.
            "PORT": str(self.ports["api"]),
            "WORKER_METRICS_PORT": str(self.ports["worker"]),
            "SCHEDULER_METRICS_PORT": str(self.ports["scheduler"]),
        }
        self.pods: dict[str, ChartPod] = {}

    def pod(self, kind: str, name: str) -> ChartPod:
        pod = ChartPod(
            get(self.docs, kind, name),
            self.image,
            self.docs,
            self.overrides,
            self.workdir,
            moved_ports={8000: self.ports["api"]},
        )
        self.pods[name] = pod
        return pod

    def remove(self) -> None:
        for pod in self.pods.values():
            pod.remove()


@pytest.fixture
def release(image: str, tmp_path: Path) -> Iterator[Release]:
    from gristmill.migrations.runner import drop_database

    with server_urls() as servers, private_redis_url(servers.redis_server_url) as redis_url:
        database_url = private_database_url(servers.database_server_url, "images")
        running = Release(image, tmp_path, database_url, redis_url)
        try:
            yield running
        finally:
            running.remove()
            drop_database(database_url)


def test_image_holds_the_services_and_nothing_of_the_tests(image: str) -> None:
    size = image_size_bytes(image)
    assert size < MAX_IMAGE_BYTES, f"image is {size / 1e6:.0f} MB"
    # Every service module imports, and no test module is there to import.
    probe = "\n".join(
        [
            "import importlib.util",
            "import services.api.app, services.worker.app, services.scheduler.app",
            "import gristmill.migrations",
            "def absent(name):",
            "    try:",
            "        return importlib.util.find_spec(name) is None",
            "    except ModuleNotFoundError:",
            "        return True",
            "print(absent('tests.fakeplatform') and absent('tests.support'))",
        ]
    )
    output = run_in_image(image, ["python", "-c", probe])
    assert output.strip().splitlines()[-1] == "True"
    found = run_in_image(image, ["sh", "-c", "find / -xdev -name 'fakeplatform*' | wc -l"])
    assert found.strip() == "0"
    whoami = run_in_image(image, ["id", "-u"])
    assert whoami.strip() == "10001"
    tini = run_in_image(image, ["python", "-c", "import os; print(os.readlink('/proc/1/exe'))"])
    assert tini.strip().endswith("tini")


def _wait_ready(pods: dict[str, tuple[ChartPod, str]]) -> None:
    """Poll every pod's probe together; record each one's time from its start to ready."""
    waiting = dict(pods)

    def all_ready() -> bool:
        for what, (pod, probe) in list(waiting.items()):
            if not pod.running():
                raise AssertionError(f"{what} exited:\n{pod.logs()}")
            if pod.probe(probe):
                assert pod.main is not None
                now = time.monotonic()
                FIGURES[f"time to ready: {what}"] = (
                    f"{now - pod.main.pod_started_at:.1f} s from pod start "
                    f"({now - pod.main.started_at:.1f} s after wait-for-db), {probe}"
                )
                del waiting[what]
        return not waiting

    wait_until(all_ready, timeout=180, interval=0.2, what=f"{', '.join(waiting)} to be ready")


def test_the_chart_release_runs_a_job_and_stops_cleanly(
    release: Release, fake_platform: FakePlatform
) -> None:
    started = time.monotonic()
    # The migration Job (create-db init container, then migrate), as a post-install hook would.
    release.pod("Job", "migrate").run_init_containers()
    migrate = release.pods["migrate"]
    (migrate_container,) = migrate.spec["containers"]
    migrate.run_to_completion(migrate_container)

    api, worker, scheduler = (
        release.pod("Deployment", name) for name in ("api", "worker-high", "scheduler")
    )
    # One pod at a time, so that each time to ready is that service's own (on 2 shared cores).
    for what, pod, probe in (
        ("api", api, "readinessProbe"),
        ("worker-high", worker, "startupProbe"),
        ("scheduler", scheduler, "startupProbe"),
    ):
        pod.start()  # the wait-for-db init container first, as in the pod
        _wait_ready({what: (pod, probe)})

    api_url = f"http://127.0.0.1:{release.ports['api']}"
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as client:
        # A job started through the containerised api completes in the containerised worker.
        register_mastodon(client, fake_platform, "containers", followers=5150)
        job_started = time.monotonic()
        job = wait_for_job(client, start(client, "/api/jobs/scrape-account/containers"), timeout=90)
        assert job["status"] == "completed", (job, worker.logs())
        assert job["result"]["followers"] == 5150
        FIGURES["scrape job, POST to completed"] = f"{time.monotonic() - job_started:.1f} s"

        # The worker's metrics (multiprocess files on its /tmp emptyDir) count it.
        worker_metrics = f"http://127.0.0.1:{release.ports['worker']}/metrics"
        wait_until(
            lambda: (
                _sample(_get(worker_metrics), "celery_task_succeeded_total", queue_name="high") >= 1
            ),
            timeout=30,
            what="the worker's metrics to count the scrape",
        )

        # Beat ticks: it records its health_check job and sends it (its own metrics, on the port
        # the chart declares), and keeps touching its heartbeat file, which the probe reads.
        scheduler_metrics = f"http://127.0.0.1:{release.ports['scheduler']}/metrics"
        wait_until(
            lambda: (
                _sample(_get(scheduler_metrics), "celery_task_sent_total", name=HEALTH_TASK) >= 1
            ),
            timeout=60,
            what="beat to send its health check",
        )
        health = client.get("/api/jobs", params={"job_type": "health_check"}).json()
        assert health["items"], "beat recorded no health_check job"
        first_touch = scheduler.exec_output("stat", "-c", "%Y", BEAT_HEARTBEAT)
        wait_until(
            lambda: scheduler.exec_output("stat", "-c", "%Y", BEAT_HEARTBEAT) != first_touch,
            timeout=30,
            what="beat to tick again",
        )
        assert scheduler.probe("livenessProbe"), scheduler.logs()
        assert worker.probe("livenessProbe"), worker.logs()

        # SIGTERM while the worker runs a job: warm shutdown lets it finish, within the grace.
        register_mastodon(client, fake_platform, "slow", followers=7)
        fake_platform.set_latency(2.0, "slow")
        slow = start(client, "/api/jobs/scrape-account/slow")
        assert wait_for_job(client, slow, ("running", "completed"), timeout=60)["status"] == (
            "running"
        )
        elapsed, code = worker.stop()
        logs = worker.logs(200)
        outcome = get_job(client, slow)["status"]
        FIGURES["SIGTERM to exit: worker (job running)"] = (
            f"{elapsed:.1f} s, exit code {code}, the job {outcome}"
        )
        assert elapsed < worker.grace_seconds, logs
        assert code == 0, logs
        assert "Warm shutdown" in logs, logs
        # Finished during the warm shutdown, or handed back to the queue: never lost.
        assert outcome in ("completed", "pending"), logs

    # Beat's SIGTERM handler saves the schedule and exits 0; uvicorn finishes its requests, says
    # so and re-raises the signal (143). Either way not killed at the end of the grace (137).
    for pod, exit_codes, last_words in ((scheduler, {0}, ""), (api, {0, 143}, "Finished server")):
        assert pod.main is not None
        elapsed, code = pod.stop()
        logs = pod.logs(50)
        FIGURES[f"SIGTERM to exit: {pod.main.container['name']}"] = (
            f"{elapsed:.1f} s, exit code {code}"
        )
        assert elapsed < pod.grace_seconds, logs
        assert code in exit_codes, logs
        assert last_words in logs, logs
    FIGURES["release run (migrate to last stop)"] = f"{time.monotonic() - started:.0f} s"
