"""The dashboard in Chromium against the running stack: what an operator does with it."""

from __future__ import annotations

import math
from datetime import timedelta

import httpx
from playwright.sync_api import Browser, expect

from gristmill.accounts.models import Account
from gristmill.clock import utc_now, utc_today
from gristmill.db import Database
from gristmill.jobs.models import DeadLetter
from gristmill.jobs.types import JobStatus, JobType
from gristmill.metrics.models import DailyActivityRow, MetricSnapshot
from tests.browser.conftest import PHONE, Console, open_console
from tests.factories import make_job
from tests.fakeplatform import FakePlatform, FakePost
from tests.support.jobs import get_job, register_mastodon, start, wait_for_job
from tests.support.stack import Stack

TIMEOUT_MS = 30_000


def _seed_metrics(database: Database, key: str, days: int = 30) -> None:
    today = utc_today()
    with database.transaction() as session:
        account = session.query(Account).filter_by(key=key).one()
        for offset in range(days):
            day = today - timedelta(days=days - 1 - offset)
            captured = utc_now()
            session.add(
                MetricSnapshot(
                    account_id=account.id,
                    date=day,
                    followers=1200 + offset * 37 + (offset % 5) * 9,
                    following=300 + offset // 3,
                    posts=800 + offset * 2,
                    captured_at=captured,
                )
            )
            session.add(
                DailyActivityRow(
                    account_id=account.id,
                    date=day,
                    posts=2 + offset % 4,
                    likes=20 + int(15 * (1 + math.sin(offset / 3))),
                    reposts=3 + offset % 6,
                    replies=1 + offset % 3,
                    captured_at=captured,
                )
            )


def test_sign_in_shows_the_overview_without_the_token_in_url_or_logs(
    console: Console, stack: Stack, browser: Browser
) -> None:
    page = console.page
    expect(page.locator("[data-queue]")).to_have_count(3)
    expect(page.locator("[data-worker^='high@']")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(page.locator("[data-schedule='daily-scrape-all']")).to_contain_text(
        stack.env["DAILY_SCRAPE_CRON"]
    )
    utc_title = page.locator("[data-schedule='daily-scrape-all'] time").last.get_attribute("title")
    assert utc_title
    assert utc_title.endswith("UTC")
    assert stack.api_token not in page.url
    console.shot("overview-1280")
    phone, context = open_console(browser, stack.api_url, stack.api_token, viewport=PHONE)
    expect(phone.page.locator("[data-queue]")).to_have_count(3)
    width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways at 390 px ({width} px wide)"
    phone.shot("overview-390")
    context.close()  # type: ignore[attr-defined]
    assert phone.errors == []
    assert stack.api_token not in stack.log("api")


def test_start_a_scrape_and_watch_its_progress_reach_done(
    console: Console, stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    register_mastodon(stack_api, fake_platform, "alice", followers=1234)
    fake_platform.set_latency(1.5, "alice")
    page = console.page
    console.go("#/accounts")
    page.evaluate("window.__sameDocument = true")
    page.click("[data-scrape='alice']")
    page.click(".toast a:text('Watch')")
    page.wait_for_selector("body[data-ready='true']")
    job_id = page.url.rsplit("/", 1)[1]
    status = page.locator(f"[data-job-status='{job_id}'] .status")
    expect(status).to_have_text("running", timeout=TIMEOUT_MS)
    console.shot("job-running")
    expect(status).to_have_text("completed", timeout=TIMEOUT_MS)
    bar = page.locator(f"[data-job-progress='{job_id}']").first
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(page.locator(".json").last).to_contain_text('"followers": 1234', timeout=TIMEOUT_MS)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    console.shot("job-completed")


def test_cancel_a_running_backfill(
    console: Console, stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    start_of_window = utc_now() - timedelta(days=29)
    posts = [FakePost(start_of_window + timedelta(hours=2 * i), likes=1) for i in range(300)]
    register_mastodon(stack_api, fake_platform, "slow", posts=posts)
    fake_platform.set_latency(0.7, "slow")
    page = console.page
    console.go("#/jobs")
    job_id = start(stack_api, "/api/jobs/backfill-account/slow", {"days": 30})
    row = page.locator(f"[data-job-id='{job_id}']").first
    expect(row.locator(".status")).to_have_text("running", timeout=TIMEOUT_MS)
    console.shot("jobs-active")
    row.locator(f"[data-cancel='{job_id}']").click()
    expect(page.locator(f"[data-job-status='{job_id}'] .status").first).to_have_text(
        "cancelled", timeout=TIMEOUT_MS
    )
    assert get_job(stack_api, job_id)["status"] == "cancelled"


def test_rerun_a_dead_letter(console: Console, stack_api: httpx.Client, clean_db: Database) -> None:
    with clean_db.transaction() as session:
        failed = make_job(
            session,
            JobType.SCRAPE_PLATFORM,
            status=JobStatus.FAILED,
            params={"platform": "bluesky"},
            completed_at=utc_now(),
        )
        session.add(
            DeadLetter(
                job_id=failed.job_id,
                job_type=failed.job_type,
                account_key=None,
                error_message="bsky.app answered 503 four times",
                attempts=4,
            )
        )
    page = console.page
    console.go("#/dead-letters")
    row = page.locator(f"[data-dead-letter='{failed.job_id}']")
    expect(row).to_contain_text("answered 503")
    console.shot("dead-letters")
    row.locator("[data-rerun]").click()
    expect(row).to_have_count(0)
    expect(page.locator(".toast")).to_contain_text("Re-running as job")
    rerun = stack_api.get("/api/jobs", params={"job_type": "scrape_platform"}).json()["items"][0]
    assert rerun["retry_of_job_id"] == str(failed.job_id)
    wait_for_job(stack_api, rerun["job_id"])


def test_page_through_history(console: Console, clean_db: Database) -> None:
    now = utc_now()
    with clean_db.transaction() as session:
        ids = [
            str(
                make_job(
                    session,
                    JobType.SCRAPE_ACCOUNT,
                    status=JobStatus.COMPLETED,
                    account_key=f"acct{i}",
                    created_at=now - timedelta(minutes=i),
                    completed_at=now,
                ).job_id
            )
            for i in range(60)
        ]
    page = console.page
    console.go("#/jobs")
    history = page.locator("section:has(h2:text('History')) tbody tr")
    expect(history).to_have_count(25)
    assert history.first.get_attribute("data-job-id") == ids[0]
    page.click("[data-page='next']")
    expect(history.first).to_have_attribute("data-job-id", ids[25])
    page.click("[data-page='next']")
    expect(history).to_have_count(10)
    expect(history.last).to_have_attribute("data-job-id", ids[59])
    expect(page.locator("[data-page='next']")).to_be_disabled()
    page.click("[data-page='prev']")
    expect(history.first).to_have_attribute("data-job-id", ids[25])
    page.select_option("select[name='status']", "failed")
    page.click("form.filters button[type=submit]")
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text("No job matches")
    console.shot("jobs-history")


def test_read_only_token_sees_no_write_controls(
    read_only_console: Console,
    stack_api: httpx.Client,
    fake_platform: FakePlatform,
    clean_db: Database,
) -> None:
    register_mastodon(stack_api, fake_platform, "alice")
    with clean_db.transaction() as session:
        failed = make_job(session, status=JobStatus.FAILED, account_key="alice")
        session.add(
            DeadLetter(
                job_id=failed.job_id,
                job_type=failed.job_type,
                account_key="alice",
                error_message="gone",
                attempts=1,
            )
        )
        make_job(session, JobType.BACKFILL_ACCOUNT, status=JobStatus.PENDING, account_key="alice")
    page = read_only_console.page
    expect(page.locator("#scope")).to_have_text("read-only")
    for route in (
        "#/",
        "#/jobs",
        "#/dead-letters",
        "#/accounts",
        "#/accounts/alice",
        f"#/jobs/{failed.job_id}",
    ):
        read_only_console.go(route)
        assert page.locator(".write, [data-cancel], [data-rerun], [data-scrape]").count() == 0, (
            route
        )
    read_only_console.go("#/accounts")
    read_only_console.shot("accounts-read-only")
    # Even a hand-made request with the session's CSRF token is refused.
    status = page.evaluate(
        """async () => {
            const session = await (await fetch('/api/session')).json();
            const response = await fetch('/api/jobs/scrape-account/alice', {
                method: 'POST', headers: {'X-CSRF-Token': session.csrf_token}});
            return response.status;
        }"""
    )
    assert status == 403
    read_only_console.errors.remove(
        "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    )


def test_an_account_chart_draws(
    console: Console,
    stack_api: httpx.Client,
    fake_platform: FakePlatform,
    clean_db: Database,
    browser: Browser,
    stack: Stack,
) -> None:
    register_mastodon(stack_api, fake_platform, "charted")
    _seed_metrics(clean_db, "charted")
    page = console.page
    console.go("#/accounts/charted")
    followers = page.locator("figure:has(figcaption:text('Followers')) path.line")
    expect(followers).to_have_count(1)
    points = (followers.get_attribute("d") or "").count("L")
    assert points == 29  # 30 days, one point each
    expect(page.locator("figure:has(figcaption:text('Posts per day')) rect.bar")).to_have_count(30)
    expect(
        page.locator("figure:has(figcaption:text('Engagement per day')) rect.bar")
    ).to_have_count(90)
    console.shot("account-1280")
    phone, context = open_console(browser, stack.api_url, stack.api_token, viewport=PHONE)
    phone.go("#/accounts/charted")
    expect(phone.page.locator("path.line")).to_have_count(3)
    phone.shot("account-390")
    context.close()  # type: ignore[attr-defined]
    assert phone.errors == []


def test_add_an_account_from_the_page(console: Console, fake_platform: FakePlatform) -> None:
    page = console.page
    console.go("#/accounts")
    page.fill("input[name='key']", "newcomer")
    page.fill("input[name='handle']", "newcomer@fake.social")
    page.fill("input[name='base_url']", fake_platform.url)
    page.click("form.add-account button[type=submit]")
    expect(page.locator("[data-account='newcomer']")).to_have_count(1)
    page.fill("input[name='key']", "newcomer")
    page.fill("input[name='handle']", "newcomer@fake.social")
    page.click("form.add-account button[type=submit]")
    expect(page.locator("form.add-account .error")).to_contain_text("already exists")
    console.errors.clear()  # the refused duplicate is logged by the browser as a failed request
    console.shot("accounts")


def test_a_fan_out_job_page_lists_its_children(
    console: Console, stack_api: httpx.Client, fake_platform: FakePlatform
) -> None:
    for index in range(4):
        register_mastodon(stack_api, fake_platform, f"fan{index}")
    job_id = start(stack_api, "/api/jobs/scrape-all")
    console.go(f"#/jobs/{job_id}")
    page = console.page
    expect(page.locator(f"[data-job-status='{job_id}'] .status")).to_have_text(
        "completed", timeout=TIMEOUT_MS
    )
    children = page.locator("section:has(h2:text('Children')) tbody tr")
    expect(children).to_have_count(4, timeout=TIMEOUT_MS)
    expect(page.locator(".timeline")).to_contain_text("completed")
    console.shot("job-fan-out")
