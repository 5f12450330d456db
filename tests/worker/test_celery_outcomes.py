"""Celery sees what happened to each job: Flower's events and the worker's metrics agree with the
jobs table (a failed job is a failed task, a retry a retry, a cancel a revoke)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gristmill.celery_app import celery_app
from tests.fakeplatform import FakeFailure, FakePlatform
from tests.observability.support import parse_exposition, value
from tests.support.jobs import register_mastodon, start, wait_for_job
from tests.support.stack import Stack, free_port, wait_until

pytestmark = pytest.mark.integration

TASK = "gristmill.scrape_account"


class EventLog:
    """Task events as Flower receives them, from the broker, in a thread of the test."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()

    def run(self) -> None:
        with celery_app.connection_for_read() as connection:
            receiver = celery_app.events.Receiver(connection, handlers={"*": self._record})
            self._ready.set()
            while not self._stop.is_set():
                try:
                    receiver.capture(limit=None, timeout=0.5, wakeup=False)
                except TimeoutError:
                    continue

    def _record(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, task_id: str) -> list[str]:
        with self._lock:
            return [e["type"] for e in self.events if e.get("uuid") == task_id]


@pytest.fixture
def event_log() -> Iterator[EventLog]:
    log = EventLog()
    thread = threading.Thread(target=log.run, daemon=True)
    thread.start()
    assert log._ready.wait(10)
    yield log
    log._stop.set()
    thread.join(5)


@pytest.fixture
def metered_worker(stack: Stack) -> Iterator[str]:
    """worker_high restarted with its metrics served on a free port."""
    port = free_port()
    stack.kill("worker_high", signal.SIGTERM)
    stack.start("worker_high", {"WORKER_METRICS_PORT": str(port)})
    url = f"http://127.0.0.1:{port}/metrics"

    def answers() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout=60, what=url)
    # Task events are off by default; Flower switches them on in every worker, and so does this.
    wait_until(
        lambda: celery_app.control.enable_events(reply=True, timeout=1),
        timeout=30,
        what="the workers to switch task events on",
    )
    yield url
    stack.kill("worker_high", signal.SIGTERM)
    stack.start("worker_high")


def test_failed_retried_and_cancelled_jobs_are_what_celery_reports(
    stack_api: httpx.Client,
    fake_platform: FakePlatform,
    metered_worker: str,
    event_log: EventLog,
) -> None:
    register_mastodon(stack_api, fake_platform, "private")
    register_mastodon(stack_api, fake_platform, "flaky")
    register_mastodon(stack_api, fake_platform, "slow")
    fake_platform.fail_next("private", [FakeFailure(403)])
    fake_platform.fail_next("flaky", [FakeFailure(503)])
    fake_platform.set_latency(30, "slow")

    failed = start(stack_api, "/api/jobs/scrape-account/private")
    retried = start(stack_api, "/api/jobs/scrape-account/flaky")
    cancelled = start(stack_api, "/api/jobs/scrape-account/slow")
    wait_until(lambda: fake_platform.request_count("slow") == 1, timeout=20, what="slow request")
    stack_api.post(f"/api/jobs/{cancelled}/cancel").raise_for_status()

    assert wait_for_job(stack_api, failed)["status"] == "failed"
    assert wait_for_job(stack_api, retried, timeout=30)["status"] == "completed"
    assert wait_for_job(stack_api, cancelled)["status"] == "cancelled"

    wait_until(lambda: "task-failed" in event_log.of(failed), timeout=20, what="task-failed")
    wait_until(lambda: "task-retried" in event_log.of(retried), timeout=20, what="task-retried")
    wait_until(lambda: "task-succeeded" in event_log.of(retried), timeout=20, what="task-succeeded")
    wait_until(lambda: "task-revoked" in event_log.of(cancelled), timeout=20, what="revoked")
    assert "task-succeeded" not in event_log.of(failed)
    assert "task-succeeded" not in event_log.of(cancelled)

    def counted() -> dict[str, float | None] | None:
        samples = parse_exposition(httpx.get(metered_worker, timeout=5).text)
        labels = {"name": TASK, "queue_name": "high"}
        hostname = next(
            dict(key[1])["hostname"]
            for key in samples
            if key[0] == "celery_task_received_total" and dict(key[1]).get("name") == TASK
        )
        found = {
            "failed": value(
                samples,
                "celery_task_failed_total",
                **labels,
                hostname=hostname,
                exception="PermanentScrapeError",
            ),
            "retried": value(samples, "celery_task_retried_total", **labels, hostname=hostname),
            "revoked": value(samples, "celery_task_revoked_total", **labels, hostname=hostname),
            "succeeded": value(samples, "celery_task_succeeded_total", **labels, hostname=hostname),
        }
        return found if all(found.values()) else None

    found = wait_until(counted, timeout=30, what="the worker's outcome counters")
    assert found == {"failed": 1.0, "retried": 1.0, "revoked": 1.0, "succeeded": 1.0}
