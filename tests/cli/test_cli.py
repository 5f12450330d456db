"""The `gristmill` command against the running stack: run it, read what it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gristmill.clock import utc_now
from gristmill.db import Database
from gristmill.jobs.models import DeadLetter
from gristmill.jobs.types import JobStatus, JobType
from tests.conftest import READ_TOKEN
from tests.factories import make_job
from tests.fakeplatform import FakePlatform, FakePost
from tests.support.jobs import register_mastodon, register_unknown_mastodon, start, wait_for_job
from tests.support.stack import Stack, free_port

pytestmark = pytest.mark.integration

GRISTMILL = str(Path(sys.executable).parent / "gristmill")


def run(
    stack: Stack,
    *args: str,
    token: str | None = None,
    url: str | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "GRISTMILL_URL": url or stack.api_url,
        "GRISTMILL_TOKEN": token if token is not None else stack.api_token,
        # Wide enough that tables are not cut; a pipe is not a terminal, so no colours.
        "COLUMNS": "200",
    }
    return subprocess.run(
        [GRISTMILL, *args],
        env=env,
        cwd=cwd or Path("/tmp"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_accounts_add_list_and_import_reporting_each_failure(
    stack: Stack, stack_api: httpx.Client, tmp_path: Path
) -> None:
    added = run(stack, "accounts", "add", "alice", "mastodon", "alice@fake.social")
    assert added.returncode == 0, added.stderr
    assert "added account alice (mastodon)" in added.stderr
    duplicate = run(stack, "accounts", "add", "alice", "mastodon", "alice@fake.social")
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr

    (tmp_path / "accounts.csv").write_text(
        "key,platform,handle,base_url\n"
        "bob,mastodon,bob@fake.social,\n"
        "carol,bluesky,carol.bsky.social,\n"
        "Bad Key,mastodon,x@fake.social,\n"
        "dave,friendster,dave,\n"
        "alice,mastodon,alice@fake.social,\n"
    )
    imported = run(stack, "accounts", "import", str(tmp_path / "accounts.csv"))
    assert imported.returncode == 1
    assert "added  bob" in imported.stderr
    assert "added  carol" in imported.stderr
    assert "failed Bad Key (row 3)" in imported.stderr
    assert "failed dave (row 4): unknown platform 'friendster'" in imported.stderr
    assert "failed alice (row 5): an account with key 'alice' already exists" in imported.stderr
    assert "2 added, 3 failed" in imported.stderr

    (tmp_path / "more.yaml").write_text(
        "accounts:\n"
        "  - {key: erin, platform: mastodon, handle: erin@fake.social}\n"
        "  - {key: frank, platform: bluesky, handle: frank.bsky.social, colour: red}\n"
    )
    outcome = json.loads(
        run(stack, "accounts", "import", str(tmp_path / "more.yaml"), "--json").stdout
    )
    assert outcome == [
        {"row": 1, "key": "erin", "ok": True, "error": None},
        {"row": 2, "key": "frank", "ok": False, "error": "unknown field(s): colour"},
    ]
    keys = [a["key"] for a in as_json(run(stack, "accounts", "list", "--json"))]
    assert keys == ["alice", "bob", "carol", "erin"]
    listing = run(stack, "accounts", "list")
    assert "4 accounts" in listing.stdout
    assert "carol.bsky.social" in listing.stdout
    bad_file = run(stack, "accounts", "import", str(tmp_path / "missing.csv"))
    assert bad_file.returncode == 1
    assert "cannot read" in bad_file.stderr


def test_jobs_start_wait_shows_progress_until_done(
    stack: Stack, stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    register_mastodon(stack_api, fake_platform, "alice", followers=321)
    fake_platform.set_latency(0.5, "alice")
    result = run(stack, "jobs", "start", "scrape-account", "alice", "--wait")
    assert result.returncode == 0, result.stderr
    assert "started scrape_account job" in result.stderr
    assert "100%" in result.stderr  # the progress bar reached the end
    assert "completed" in result.stderr
    job = as_json(run(stack, "jobs", "start", "scrape-account", "alice", "--wait", "--json"))
    assert job["status"] == "completed"
    assert job["result"]["followers"] == 321

    shown = run(stack, "jobs", "show", job["job_id"])
    assert shown.returncode == 0
    assert "completed" in shown.stdout
    assert '"followers": 321' in shown.stdout
    listed = as_json(run(stack, "jobs", "list", "--account", "alice", "--json"))
    assert [j["job_id"] for j in listed["items"]][0] == job["job_id"]
    deleted = run(stack, "jobs", "delete", job["job_id"])
    assert deleted.returncode == 0
    gone = run(stack, "jobs", "show", job["job_id"])
    assert gone.returncode == 1
    assert f"not found: job {job['job_id']} not found" in gone.stderr


def test_a_failing_job_exits_non_zero(
    stack: Stack, stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    # Not on the fake platform: it answers 404, a permanent error.
    register_unknown_mastodon(stack_api, fake_platform, "ghost")
    result = run(stack, "jobs", "start", "scrape-account", "ghost", "--wait")
    assert result.returncode == 1
    assert "failed" in result.stderr


def test_cancel_retry_and_dead_letters(
    stack: Stack, stack_api: httpx.Client, clean_db: Database, fake_platform: FakePlatform
) -> None:
    with clean_db.transaction() as session:
        failed = make_job(
            session,
            JobType.SCRAPE_PLATFORM,
            status=JobStatus.FAILED,
            params={"platform": "bluesky"},
        )
        session.add(
            DeadLetter(
                job_id=failed.job_id,
                job_type=failed.job_type,
                account_key=None,
                error_message="platform kept answering 503",
                attempts=4,
            )
        )
    letters = run(stack, "dead-letters")
    assert letters.returncode == 0
    assert str(failed.job_id) in letters.stdout
    assert "platform kept answering 503" in letters.stdout
    retried = as_json(run(stack, "jobs", "retry", str(failed.job_id), "--json"))
    assert retried["retry_of_job_id"] == str(failed.job_id)
    assert as_json(run(stack, "dead-letters", "--json"))["items"] == []
    wait_for_job(stack_api, retried["job_id"])
    again = run(stack, "jobs", "retry", str(failed.job_id))
    assert again.returncode == 1
    assert "not in the dead-letter queue" in again.stderr

    # Many pages of posts, each answered slowly: the backfill runs for half a minute.
    first_day = utc_now() - timedelta(days=29)
    posts = [FakePost(first_day + timedelta(hours=2 * i), likes=1) for i in range(300)]
    register_mastodon(stack_api, fake_platform, "slowpoke", posts=posts)
    fake_platform.set_latency(2, "slowpoke")
    running = start(stack_api, "/api/jobs/backfill-account/slowpoke", {"days": 30})
    same = run(stack, "jobs", "start", "backfill-account", "slowpoke", "--days", "30")
    assert same.returncode == 0, same.stderr
    assert f"is already pending: {running}" in same.stderr or f"running: {running}" in same.stderr
    cancelled = run(stack, "jobs", "cancel", running)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"job {running} cancelled" in cancelled.stderr
    twice = run(stack, "jobs", "cancel", running)
    assert twice.returncode == 1
    assert "already cancelled" in twice.stderr


def test_queues_workers_and_schedules(stack: Stack, stack_api: httpx.Client) -> None:
    queues = as_json(run(stack, "queues", "--json"))
    assert [q["name"] for q in queues["queues"]] == ["high", "default", "low"]
    workers = as_json(run(stack, "workers", "--json"))
    assert {w["pool"] for w in workers["workers"]} >= {"high", "default", "low"}
    table = run(stack, "workers")
    assert "high@" in table.stdout
    assert " up " in table.stdout or "up" in table.stdout.split()
    schedules = run(stack, "schedules")
    assert "daily-scrape-all" in schedules.stdout
    assert stack.env["DAILY_SCRAPE_CRON"] in schedules.stdout


def test_clear_messages_for_wrong_url_token_and_account(stack: Stack) -> None:
    nobody = run(stack, "queues", url=f"http://127.0.0.1:{free_port()}")
    assert nobody.returncode == 1
    assert "cannot reach the Gristmill api at http://127.0.0.1:" in nobody.stderr
    assert "GRISTMILL_URL" in nobody.stderr
    assert "Traceback" not in nobody.stderr
    not_ours = run(stack, "queues", url=f"{stack.api_url}/docs")
    assert not_ours.returncode == 1
    assert "is GRISTMILL_URL right?" in not_ours.stderr
    wrong = run(stack, "queues", token="not-a-token")
    assert wrong.returncode == 1
    assert "refused the token" in wrong.stderr
    assert "GRISTMILL_TOKEN" in wrong.stderr
    assert "not-a-token" not in wrong.stderr
    missing = run(stack, "queues", token="")
    assert missing.returncode == 1
    assert "set GRISTMILL_TOKEN" in missing.stderr
    unknown = run(stack, "jobs", "start", "scrape-account", "nobody")
    assert unknown.returncode == 1
    assert "not found: account 'nobody' not found" in unknown.stderr
    read_only = run(stack, "jobs", "start", "scrape-all", token=READ_TOKEN)
    assert read_only.returncode == 1
    assert "read-only" in read_only.stderr
    usage = run(stack, "jobs", "start", "backfill-account")
    assert usage.returncode == 1
    assert "takes an account key" in usage.stderr
