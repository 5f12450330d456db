"""First load of the dashboard with 10,000 jobs and 1,000 accounts: at most one second."""

from __future__ import annotations

import re
import statistics
import time

from playwright.sync_api import Browser, expect
from sqlalchemy import text

from gristmill.db import Database
from tests.browser.conftest import Console, open_console
from tests.support.stack import Stack

JOBS = 10_000
ACCOUNTS = 1_000
LIMIT_SECONDS = 1.0


def _seed(database: Database) -> None:
    # Finished jobs only: pending rows without a message would be sent by a relay of unsent jobs.
    with database.transaction() as session:
        session.execute(
            text(
                """
                INSERT INTO accounts (key, platform, handle, active)
                SELECT 'acct' || i, 'mastodon', 'acct' || i || '@fake.social', true
                FROM generate_series(1, :accounts) AS i
                """
            ),
            {"accounts": ACCOUNTS},
        )
        session.execute(
            text(
                """
                INSERT INTO jobs (job_id, job_type, status, progress, params, queue, priority,
                                  attempts, account_key, created_at, started_at, completed_at)
                SELECT gen_random_uuid(), 'scrape_account',
                       (ARRAY['completed','completed','completed','failed','cancelled'])[1 + i % 5],
                       100, jsonb_build_object('account_key', 'acct' || (1 + i % :accounts)),
                       'high', 0, 1, 'acct' || (1 + i % :accounts),
                       now() - make_interval(secs => i * 8), now() - make_interval(secs => i * 8),
                       now() - make_interval(secs => i * 8 - 2)
                FROM generate_series(1, :jobs) AS i
                """
            ),
            {"jobs": JOBS, "accounts": ACCOUNTS},
        )
    with database.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def _timed(console: Console, action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    console.page.wait_for_selector("body[data-ready='true']")
    return time.perf_counter() - started


def test_first_load_within_a_second_with_10k_jobs_and_1k_accounts(
    console: Console, browser: Browser, stack: Stack, clean_db: Database
) -> None:
    _seed(clean_db)
    # A fresh browser each time: nothing cached but the session cookie.
    loads = []
    for _ in range(3):
        fresh, context = open_console(browser, stack.api_url, stack.api_token)
        loads.append(_timed(fresh, lambda f=fresh: f.page.reload()))
        context.close()  # type: ignore[attr-defined]
        assert fresh.errors == []
    console.page.wait_for_selector("[data-worker]")

    # Moving between pages inside the app: the better of two visits each, since a single visit
    # on a CPU shared with the rest of the suite measures the neighbours as much as the page.
    def visit(route: str) -> float:
        return _timed(
            console,
            lambda: console.page.evaluate(
                "(r) => { document.body.dataset.ready = 'false'; window.location.hash = r; }",
                route,
            ),
        )

    pages = {}
    for route in ("#/jobs", "#/accounts", "#/dead-letters"):
        first = visit(route)
        visit("#/")  # leave, so that the second visit is a real navigation
        pages[route] = min(first, visit(route))
    console.go("#/accounts")
    expect(console.page.locator("[data-account]")).to_have_count(100)
    console.page.click("[data-more='accounts']")
    expect(console.page.locator("[data-account]")).to_have_count(600)
    visit("#/")
    console.shot("overview-10k-jobs")
    print(
        f"first load: {', '.join(f'{s:.3f} s' for s in loads)}; pages: "
        + ", ".join(f"{r} {s:.3f} s" for r, s in pages.items())
    )
    assert statistics.median(loads) <= LIMIT_SECONDS, loads
    assert max(pages.values()) <= LIMIT_SECONDS, pages
    # Jobs are 8 s apart, so all 10,000 fall in the last 24 h; 3 in 5 completed.
    completed = console.page.locator("[data-total='completed'] strong").inner_text()
    assert re.sub(r"\D", "", completed) == str(JOBS * 3 // 5)
