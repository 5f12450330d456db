"""A real browser (Debian's Chromium, driven by Playwright) against the running stack.

Every page records console errors and uncaught exceptions; a test fails if any appeared.
Screenshots go to tests/browser/screenshots/ (git-ignored) for people to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from gristmill.db import Database
from tests.conftest import READ_TOKEN, WRITE_TOKEN
from tests.support.stack import Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which(CHROMIUM) is None:
        # .ci/run installs it; a developer machine without it is told how, not silently green.
        for item in items:
            if "tests/browser" in str(item.fspath):
                item.add_marker(
                    pytest.mark.skip(reason=f"{CHROMIUM} missing: apt-get install chromium")
                )


# Package scope: sync Playwright keeps an event loop running in the main thread while it is
# open, which would break every later test that calls asyncio.run().
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    SCREENSHOTS.mkdir(exist_ok=True)
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@dataclass
class Console:
    """A signed-in page plus what its console said."""

    page: Page
    base_url: str
    errors: list[str] = field(default_factory=list)

    def go(self, hash_route: str) -> None:
        """Navigate inside the app (no reload) and wait until the view has rendered."""
        self.page.evaluate("(route) => { window.location.hash = route; }", hash_route)
        self.page.wait_for_selector("body[data-ready='true']")

    def shot(self, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def open_console(
    browser: Browser, base_url: str, token: str, *, viewport: dict[str, int] = DESKTOP
) -> tuple[Console, object]:
    context = browser.new_context(viewport=viewport, base_url=base_url)  # type: ignore[arg-type]
    page = context.new_page()
    console = Console(page, base_url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: console.errors.append(f"uncaught: {error}"))
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/")
    page.wait_for_selector("#sign-in:not([hidden])")
    page.fill("#token", token)
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#nav:not([hidden])")
    page.wait_for_selector("body[data-ready='true']")
    return console, context


@pytest.fixture
def console(
    browser: Browser, stack: Stack, stack_api: httpx.Client, clean_db: Database
) -> Iterator[Console]:
    opened, context = open_console(browser, stack.api_url, WRITE_TOKEN)
    yield opened
    context.close()  # type: ignore[attr-defined]
    assert opened.errors == [], opened.errors


@pytest.fixture
def read_only_console(
    browser: Browser, stack: Stack, stack_api: httpx.Client, clean_db: Database
) -> Iterator[Console]:
    opened, context = open_console(browser, stack.api_url, READ_TOKEN)
    yield opened
    context.close()  # type: ignore[attr-defined]
    assert opened.errors == [], opened.errors
