"""The console in a real browser: the embedded stack started by `xrunner up --console-dir` (the built console served
by the gateway) and Debian's Chromium driven by Playwright (never a downloaded browser). Every page a test opens
fails the test on a console error or an uncaught exception; screenshots go to tests/browser/results/."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from browser.console_harness import RESULTS, ConsoleStack, Problems, console_stack_running


@pytest.fixture(scope="package")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    with console_stack_running(tmp_path_factory.mktemp("console")) as stack:
        yield stack


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    # Package scope, like the stack and the browser: sync Playwright keeps its event loop running in this thread for
    # as long as it lives, and the asyncio tests collected after this package could not run theirs beside it.
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (./dev test installs it: apt-get install chromium)"
    browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture
def problems() -> Problems:
    return Problems()


@pytest.fixture
def page(browser: Browser, problems: Problems) -> Iterator[Page]:
    """A fresh browser context (its own sessionStorage and localStorage); no console error may happen in it."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.on("console", problems.console)
    page.on("pageerror", lambda exc: problems.seen.append(f"uncaught: {exc}"))
    yield page
    context.close()
    assert problems.seen == [], "the page logged errors"


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """Writes a full-page screenshot to the results folder (the README shows two of them)."""

    def take(page: Page, name: str) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
