"""Backfill numbers, cancellation, soft time limits and a worker killed mid-job."""

from __future__ import annotations

import signal
import time as time_module
from datetime import UTC, datetime, time, timedelta

import httpx
import pytest

from gristmill.clock import utc_today
from tests.fakeplatform import FakePlatform, FakePost
from tests.support.jobs import get_job, register_mastodon, start, wait_for_job
from tests.support.stack import Stack, wait_until

pytestmark = pytest.mark.integration


def _at(day_offset: int, clock: time) -> datetime:
    return datetime.combine(utc_today() + timedelta(days=day_offset), clock, tzinfo=UTC)


def _many_posts(count: int, days: int) -> list[FakePost]:
    start_of_window = _at(-(days - 1), time(0, 0, 1))
    step = timedelta(days=days - 1) / count
    return [FakePost(start_of_window + step * i, likes=1) for i in range(count)]


def test_mastodon_backfill_stores_exact_daily_numbers(
    stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    posts = [
        FakePost(_at(0, time(0, 0, 5)), likes=5, reposts=1, replies=2),
        FakePost(_at(0, time(0, 0, 1)), likes=1, is_reply=True),
        FakePost(_at(-1, time(23, 59, 59)), likes=3),
        FakePost(_at(-1, time(12, 0)), likes=100, reposts=100, is_boost=True),
        FakePost(_at(-3, time(12, 0)), likes=10, reposts=4),
        FakePost(_at(-3, time(23, 59, 59)), likes=7),
    ]
    register_mastodon(stack_api, fake_platform, "alice", posts=posts)
    job = wait_for_job(stack_api, start(stack_api, "/api/jobs/backfill-account/alice", {"days": 3}))
    assert job["status"] == "completed", job
    assert job["progress"] == 100
    assert job["result"]["days_saved"] == 3
    daily = stack_api.get("/api/accounts/alice/metrics").json()["daily"]
    today = utc_today()
    assert daily == [
        {
            "date": str(today - timedelta(days=2)),
            "posts": 0,
            "likes": 0,
            "reposts": 0,
            "replies": 0,
        },
        {
            "date": str(today - timedelta(days=1)),
            "posts": 1,
            "likes": 3,
            "reposts": 0,
            "replies": 0,
        },
        {"date": str(today), "posts": 2, "likes": 6, "reposts": 1, "replies": 2},
    ]
    # Running it again gives the same rows, not doubled ones.
    wait_for_job(stack_api, start(stack_api, "/api/jobs/backfill-account/alice", {"days": 3}))
    assert stack_api.get("/api/accounts/alice/metrics").json()["daily"] == daily


def test_running_backfill_is_cancelled_within_seconds_keeping_partial_results(
    stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    register_mastodon(stack_api, fake_platform, "slow", posts=_many_posts(400, 30))
    fake_platform.set_latency(0.5, "slow")
    job_id = start(stack_api, "/api/jobs/backfill-account/slow", {"days": 30})
    wait_until(
        lambda: (get_job(stack_api, job_id).get("result") or {}).get("pages", 0) >= 1,
        timeout=20,
        what="the first page",
    )
    cancelled = stack_api.post(f"/api/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    requests_at_cancel = fake_platform.request_count("slow")
    # The worker notices at its next page and stops: no more than one more request goes out.
    wait_until(
        lambda: (
            fake_platform.request_count("slow") <= requests_at_cancel + 1
            and get_job(stack_api, job_id)["result"].get("pages", 0) >= 1
        ),
        timeout=5,
        what="the worker to stop",
    )
    job = get_job(stack_api, job_id)
    assert job["status"] == "cancelled"
    assert job["result"]["pages"] >= 1
    assert fake_platform.request_count("slow") < 12  # it did not page through everything


def test_soft_time_limit_fails_the_job_and_keeps_partial_results(
    stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    # The test stack sets BACKFILL_SOFT_TIME_LIMIT_SECONDS=8; this needs ~11 s of pages.
    register_mastodon(stack_api, fake_platform, "huge", posts=_many_posts(400, 30))
    fake_platform.set_latency(1.0, "huge")
    job = wait_for_job(
        stack_api, start(stack_api, "/api/jobs/backfill-account/huge", {"days": 30}), timeout=30
    )
    assert job["status"] == "failed"
    assert job["error_message"] == "timed out after 8 seconds (soft time limit)"
    assert job["result"]["pages"] >= 2
    assert job["result"]["days_saved"] >= 1
    saved = stack_api.get("/api/accounts/huge/metrics").json()["daily"]
    assert len(saved) == job["result"]["days_saved"]
    assert saved[-1]["date"] == str(utc_today())


def _scrape_all_in_flight(
    stack_api: httpx.Client, fake_platform: FakePlatform, keys: list[str], latency: float
) -> str:
    """A scrape-all over these accounts, every child's request in flight (for `latency` s)."""
    for key in keys:
        register_mastodon(stack_api, fake_platform, key)
    fake_platform.set_latency(latency)
    parent_id = start(stack_api, "/api/jobs/scrape-all")
    wait_until(
        lambda: fake_platform.request_count() >= len(keys),
        timeout=20,
        what=f"{len(keys)} requests in flight",
    )
    return parent_id


def test_cancelling_a_running_parent_stops_its_childrens_requests_and_writes_nothing(
    stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    parent_id = _scrape_all_in_flight(stack_api, fake_platform, [f"c{i}" for i in range(8)], 8)
    cancelled_at = time_module.monotonic()
    assert stack_api.post(f"/api/jobs/{parent_id}/cancel").json()["status"] == "cancelled"
    children = stack_api.get("/api/jobs", params={"parent_job_id": parent_id}).json()["items"]
    assert len(children) == 8
    assert {child["status"] for child in children} == {"cancelled"}
    # The worker notices within about a second and hangs up on every request in flight.
    wait_until(lambda: len(fake_platform.abandoned()) == 8, timeout=5, what="8 hang-ups")
    assert max(fake_platform.abandoned()) - cancelled_at < 2.0
    # Nothing is written for a cancelled job, ever.
    time_module.sleep(1)
    for index in range(8):
        assert stack_api.get(f"/api/accounts/c{index}/metrics").json()["snapshots"] == []
    children = stack_api.get("/api/jobs", params={"parent_job_id": parent_id}).json()["items"]
    assert {child["status"] for child in children} == {"cancelled"}
    assert all(child["result"] is None for child in children)
    parent = get_job(stack_api, parent_id)
    assert parent["status"] == "cancelled"
    assert parent["result"]["cancelled"] == 8


def test_cancelling_one_child_of_a_running_batch_stops_only_its_request(
    stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    # The four children travel in one batch message; the other three end after 4 s (within
    # the stack's scraper timeout).
    parent_id = _scrape_all_in_flight(stack_api, fake_platform, [f"k{i}" for i in range(4)], 4)
    children = stack_api.get("/api/jobs", params={"parent_job_id": parent_id}).json()["items"]
    child_of = {child["account_key"]: child["job_id"] for child in children}
    cancelled_at = time_module.monotonic()
    assert stack_api.post(f"/api/jobs/{child_of['k0']}/cancel").json()["status"] == "cancelled"
    wait_until(lambda: fake_platform.abandoned(), timeout=5, what="the cancelled child's hang-up")
    assert fake_platform.abandoned("k0@fake.social") == fake_platform.abandoned()
    assert fake_platform.abandoned()[0] - cancelled_at < 2.0
    parent = wait_for_job(stack_api, parent_id, timeout=30)
    assert parent["status"] == "completed"
    assert (parent["result"]["succeeded"], parent["result"]["cancelled"]) == (3, 1)
    # Nothing written for the cancelled child; its siblings stored their snapshots.
    assert stack_api.get("/api/accounts/k0/metrics").json()["snapshots"] == []
    for key in ("k1", "k2", "k3"):
        assert len(stack_api.get(f"/api/accounts/{key}/metrics").json()["snapshots"]) == 1
    assert get_job(stack_api, child_of["k0"])["status"] == "cancelled"


def test_job_of_a_sigkilled_worker_is_redelivered_and_completes(
    stack: Stack, stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    posts = [FakePost(_at(0, time(0, 0, 1)), likes=2)] + _many_posts(120, 10)
    register_mastodon(stack_api, fake_platform, "victim", posts=posts)
    # Slow enough that the first attempt is surely mid-request when its worker dies.
    fake_platform.set_latency(2, "victim")
    job_id = start(stack_api, "/api/jobs/backfill-account/victim", {"days": 3})
    wait_until(
        lambda: fake_platform.request_count("victim") >= 1, timeout=20, what="the first request"
    )
    assert get_job(stack_api, job_id)["status"] == "running"
    stack.kill("worker_low", signal.SIGKILL)
    fake_platform.set_latency(0, "victim")
    killed_at = datetime.now(UTC)
    stack.start("worker_low")
    job = wait_for_job(stack_api, job_id, timeout=120)
    assert job["status"] == "completed", job
    # Usually 2; a loaded machine may take the new attempt for an orphan once more.
    assert job["attempts"] >= 2
    assert (datetime.now(UTC) - killed_at).total_seconds() < 120
    daily = stack_api.get("/api/accounts/victim/metrics").json()["daily"]
    assert len(daily) == 3
    assert daily[-1]["date"] == str(utc_today())
