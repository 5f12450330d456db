"""Two schedulers at once (a rollout gone wrong), and a platform down for a while."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from tests.chaos.ledger import rows
from tests.chaos.report import settle
from tests.chaos.scale import Scale
from tests.chaos.workload import Workload, declare, start_jobs
from tests.fakeplatform import FakeFailure, FakePlatform
from tests.support.faulty import FaultyStack
from tests.support.stack import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SCHEDULERS = ("scheduler", "scheduler_b")
FIRED_ELSEWHERE = "already fired elsewhere"


def _scheduled_runs(chaos: FaultyStack) -> tuple[list[tuple[str, str]], list[str]]:
    """(entry, job) per recorded slot, and the top-level jobs the schedule created."""
    runs = rows(chaos.database, "SELECT entry, job_id::text FROM schedule_runs ORDER BY slot_at")
    jobs = rows(
        chaos.database,
        "SELECT job_id::text FROM jobs WHERE parent_job_id IS NULL "
        "AND job_type IN ('health_check', 'daily_scrape_all')",
    )
    return [(run[0], run[1]) for run in runs], [job[0] for job in jobs]


def test_two_schedulers_fire_each_slot_once(
    chaos: FaultyStack, fake_platform: FakePlatform, scale: Scale
) -> None:
    stack = chaos.stack
    workload: Workload | None = None
    every = {"HEALTH_CHECK_INTERVAL_SECONDS": "1"}
    if scale.name == "full":
        # A cron entry too, over two minute boundaries; its run fans out over real accounts.
        workload = declare(chaos, fake_platform, scale, "sched", backfills=False)
        every["DAILY_SCRAPE_CRON"] = "* * * * *"
    stack.kill("scheduler", signal.SIGTERM)
    stack.commands["scheduler_b"] = stack.commands["scheduler"]
    logged_before = {name: len(stack.log(name)) for name in SCHEDULERS}
    for name in SCHEDULERS:
        files = {
            "BEAT_SCHEDULE_FILE": str(stack.log_dir / f"{name}-schedule"),
            "BEAT_HEARTBEAT_FILE": str(stack.log_dir / f"{name}.heartbeat"),
        }
        stack.start(name, {**every, **files})
    try:
        time.sleep(scale.schedulers_seconds)  # both run side by side for this long
    finally:
        for name in SCHEDULERS:
            stack.kill(name, signal.SIGTERM)
        del stack.commands["scheduler_b"]
        stack.start("scheduler")
    runs, jobs = _scheduled_runs(chaos)
    refused = {
        name: stack.log(name)[logged_before[name] :].count(FIRED_ELSEWHERE) for name in SCHEDULERS
    }
    slots = {entry: sum(1 for e, _ in runs if e == entry) for entry, _ in runs}
    faults = (
        f"2 beats {scale.schedulers_seconds:.0f}s: {len(runs)} slots, {len(set(jobs))} jobs,"
        f" {sum(refused.values())} second firings refused"
    )
    settle(chaos, "two schedulers", faults, scale.drain_timeout, workload)
    # Both really fired: each had slots taken by the other first.
    assert sum(refused.values()) >= 1, refused
    # Beat takes a few seconds to start on a busy machine: a few slots of 1 s at least.
    assert slots.get("health-check", 0) >= scale.schedulers_seconds / 3, slots
    if workload is not None:
        assert slots.get("daily-scrape-all", 0) >= 2, slots
    # One job per slot at most, and every scheduled job belongs to a recorded slot.
    assert len(set(jobs)) == len(jobs)
    assert set(jobs) == {job_id for _, job_id in runs}, (jobs, runs)
    assert len(jobs) <= len(runs)


def _circuit(client: httpx.Client) -> dict[str, object] | None:
    hosts = client.get("/api/platforms").json()["hosts"]
    return dict(hosts[0]["circuit"]) if hosts else None


def _dead_letters(client: httpx.Client) -> int:
    return len(client.get("/api/dead-letters").json()["items"])


def test_platform_down_for_a_while(
    chaos: FaultyStack, fake_platform: FakePlatform, scale: Scale
) -> None:
    workload = declare(chaos, fake_platform, scale, "down")
    fake_platform.go_down(FakeFailure(503))
    with chaos.client() as client:
        start_jobs(client, workload)
        wait_until(
            lambda: (_circuit(client) or {}).get("state") == "open",
            timeout=30,
            what="the breaker to open",
        )
        outage_ends = time.monotonic() + scale.outage_seconds
        while time.monotonic() < outage_ends:
            # Jobs wait behind the open circuit instead of burning retries into dead letters.
            assert _dead_letters(client) == 0
            assert "failed" not in chaos.statuses()
            time.sleep(1)
        circuit = _circuit(client)
        assert circuit is not None
        fake_platform.come_back()
        failed_requests = fake_platform.request_count()
        figures = settle(
            chaos,
            "platform down",
            f"every call 503 for {scale.outage_seconds:.0f}s+, breaker opened"
            f" {circuit['opened_count']}x, {failed_requests} failed calls",
            scale.drain_timeout,
            workload,
        )
        wait_until(
            lambda: (_circuit(client) or {}).get("state") == "closed",
            timeout=30,
            what="the breaker to close",
        )
    assert figures.dead_letters == 0
