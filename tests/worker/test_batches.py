"""Fan-out batches report as they go: children end, and the parent moves, while the batch runs."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fakeplatform import FakeFailure, FakePlatform
from tests.support.jobs import get_job, register_mastodon, start, wait_for_job
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def test_a_batch_commits_its_childrens_outcomes_and_the_parents_progress_as_it_runs(
    stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    # One message carries all 8 children (FANOUT_BATCH_SIZE is 200); each account answers
    # half a second after the previous one.
    for index in range(8):
        register_mastodon(stack_api, fake_platform, f"step{index}")
        fake_platform.set_latency(1.0 + 0.5 * index, f"step{index}")
    parent_id = start(stack_api, "/api/jobs/scrape-platform/mastodon")
    seen: list[tuple[float, int, int]] = []
    began = time.monotonic()
    while time.monotonic() - began < 30:
        parent = get_job(stack_api, parent_id)
        children = stack_api.get("/api/jobs", params={"parent_job_id": parent_id}).json()
        done = sum(child["status"] == "completed" for child in children["items"])
        seen.append((time.monotonic() - began, parent["progress"], done))
        if parent["status"] != "running" and parent["status"] != "pending":
            break
        time.sleep(0.2)
    assert get_job(stack_api, parent_id)["status"] == "completed"
    progress_values = sorted({progress for _, progress, _ in seen})
    # Not 0 then 100: the parent moved through the children's endings.
    assert len([p for p in progress_values if 0 < p < 100]) >= 4, seen
    # Each child's outcome shows within about a second of its answer: never a gap of more
    # than ~1.5 s between two children showing up while the batch runs.
    firsts = [next(at for at, _, done in seen if done >= n) for n in range(1, 9)]
    assert max(b - a for a, b in zip(firsts, firsts[1:], strict=False)) < 1.5, seen


def test_every_failing_account_of_a_bulk_scrape_is_logged_with_its_reason(
    stack: Stack, stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    register_mastodon(stack_api, fake_platform, "fine")
    register_mastodon(stack_api, fake_platform, "forbidden")
    register_mastodon(stack_api, fake_platform, "gone")
    fake_platform.fail_next("forbidden", [FakeFailure(403)])
    fake_platform.fail_next("gone", [FakeFailure(404)])
    parent = wait_for_job(stack_api, start(stack_api, "/api/jobs/scrape-all"), timeout=30)
    assert parent["result"]["failed"] == 2
    log = stack.log("worker_default")
    forbidden = [line for line in log.splitlines() if "account forbidden" in line]
    gone = [line for line in log.splitlines() if "account gone" in line]
    assert forbidden
    assert "HTTP 403" in forbidden[-1]
    assert gone
    assert "not found" in gone[-1]
