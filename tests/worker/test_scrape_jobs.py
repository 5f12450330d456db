"""Scrape jobs run by real worker processes against the fake platform over HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.fakeplatform import FakeFailure, FakePlatform
from tests.support.jobs import (
    get_job,
    register_mastodon,
    register_unknown_mastodon,
    start,
    wait_for_job,
)

pytestmark = pytest.mark.integration


def test_scrape_account_completes_with_metrics(
    stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    register_mastodon(stack_api, fake_platform, "alice", followers=1234, following=56, statuses=789)
    job_id = start(stack_api, "/api/jobs/scrape-account/alice")
    job = wait_for_job(stack_api, job_id)
    assert job["status"] == "completed", job
    assert job["progress"] == 100
    assert job["started_at"] is not None
    assert job["completed_at"] is not None
    assert job["result"]["followers"] == 1234
    metrics = stack_api.get("/api/accounts/alice/metrics").json()
    assert [(s["followers"], s["following"], s["posts"]) for s in metrics["snapshots"]] == [
        (1234, 56, 789)
    ]
    # Re-scraping the same UTC day overwrites that day's snapshot.
    fake_platform.add_mastodon_account("alice", followers=1300, following=56, statuses=790)
    wait_for_job(stack_api, start(stack_api, "/api/jobs/scrape-account/alice"))
    snapshots = stack_api.get("/api/accounts/alice/metrics").json()["snapshots"]
    assert [s["followers"] for s in snapshots] == [1300]


def test_scrape_all_fans_out_and_reports_the_failing_account(
    stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    for index in range(6):
        register_mastodon(stack_api, fake_platform, f"user{index}", followers=index)
    # An account the platform does not know: a permanent failure, not retried.
    register_unknown_mastodon(stack_api, fake_platform, "ghost")
    parent_id = start(stack_api, "/api/jobs/scrape-all")
    parent = wait_for_job(stack_api, parent_id, timeout=60)
    assert parent["status"] == "completed", parent
    assert parent["progress"] == 100
    result = parent["result"]
    assert result["accounts_total"] == 7
    assert result["succeeded"] == 6
    assert result["failed"] == 1
    assert result["failures"][0]["account_key"] == "ghost"
    assert "not found" in result["failures"][0]["error"]
    children = stack_api.get("/api/jobs", params={"parent_job_id": parent_id}).json()["items"]
    assert len(children) == 7
    assert {c["status"] for c in children} == {"completed", "failed"}
    assert fake_platform.request_count("ghost") == 1


def test_scrape_platform_only_touches_that_platform(
    stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    register_mastodon(stack_api, fake_platform, "masto")
    fake_platform.add_bluesky_account("sky.bsky.social", followers=7, follows=8, posts_count=9)
    stack_api.post(
        "/api/accounts",
        json={
            "key": "sky",
            "platform": "bluesky",
            "handle": "sky.bsky.social",
            "base_url": fake_platform.url,
        },
    ).raise_for_status()
    parent = wait_for_job(stack_api, start(stack_api, "/api/jobs/scrape-platform/bluesky"))
    assert parent["status"] == "completed"
    assert parent["result"]["accounts_total"] == 1
    snapshots = stack_api.get("/api/accounts/sky/metrics").json()["snapshots"]
    assert [(s["followers"], s["following"], s["posts"]) for s in snapshots] == [(7, 8, 9)]
    assert stack_api.get("/api/accounts/masto/metrics").json()["snapshots"] == []


def test_transient_errors_are_retried_then_succeed(
    stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    register_mastodon(stack_api, fake_platform, "flaky", followers=42)
    fake_platform.fail_next(
        "flaky", [FakeFailure(429, retry_after="1"), FakeFailure(503), FakeFailure(502)]
    )
    job = wait_for_job(stack_api, start(stack_api, "/api/jobs/scrape-account/flaky"), timeout=60)
    assert job["status"] == "completed", job
    assert job["attempts"] == 4
    assert job["result"]["followers"] == 42
    assert fake_platform.request_count("flaky") == 4
    lookups = [r for r in fake_platform.requests if r.account == "flaky"]
    # Retry-After: 1 was honoured between the first and second attempt.
    assert (lookups[1].timestamp - lookups[0].timestamp).total_seconds() >= 0.9


def test_permanent_error_fails_at_once_without_retry(
    stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    register_mastodon(stack_api, fake_platform, "private")
    fake_platform.fail_next("private", [FakeFailure(403)])
    job = wait_for_job(stack_api, start(stack_api, "/api/jobs/scrape-account/private"))
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert "403" in job["error_message"]
    assert fake_platform.request_count("private") == 1
    assert stack_api.get("/api/dead-letters").json()["items"] == []


def test_exhausted_retries_dead_letter_and_rerun(
    stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    register_mastodon(stack_api, fake_platform, "down", followers=5)
    fake_platform.fail_next("down", [FakeFailure(500)] * 4)
    job_id = start(stack_api, "/api/jobs/scrape-account/down")
    job = wait_for_job(stack_api, job_id, timeout=60)
    assert job["status"] == "failed"
    assert job["attempts"] == 4  # the first try and TASK_MAX_RETRIES=3 retries
    assert job["retries"] == 3
    assert "gave up after 3 retries" in job["error_message"]
    letters = stack_api.get("/api/dead-letters").json()["items"]
    assert [letter["job_id"] for letter in letters] == [job_id]

    rerun = stack_api.post(f"/api/jobs/{job_id}/retry")
    assert rerun.status_code == 202
    new_job = wait_for_job(stack_api, rerun.json()["job_id"])
    assert new_job["status"] == "completed"
    assert new_job["result"]["followers"] == 5
    assert stack_api.get("/api/dead-letters").json()["items"] == []
    assert get_job(stack_api, job_id)["status"] == "failed"
