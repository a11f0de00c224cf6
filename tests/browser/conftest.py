"""The console in a real browser: the embedded stack started by `xrunner up --console-dir` (the built console served
by the gateway) and Debian's Chromium driven by Playwright (never a downloaded browser). Every page a test opens
fails the test on a console error or an uncaught exception; screenshots go to tests/browser/results/."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e.conftest import free_base
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from browser.console_harness import CONSOLE_BUILD, RESULTS, SLOTS, WORKERS, ConsoleStack, Problems


def _console_line(log: Path) -> str | None:
    found = re.search(r"^\s*console\s+(\S+#token=\S+)$", log.read_text(errors="replace"), re.MULTILINE)
    return found.group(1) if found else None


@pytest.fixture(scope="package")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    assert (CONSOLE_BUILD / "index.html").is_file(), "no console build: run ./dev console (./dev test builds it)"
    data_dir = tmp_path_factory.mktemp("console") / ".xrunner"
    log = data_dir.parent / "up.log"
    build = shutil.copytree(CONSOLE_BUILD, data_dir.parent / "console")  # a rebuild meanwhile cannot disturb it
    port = free_base()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
    cmd = [sys.executable, "-m", "xrunner.cli", "up", "--data-dir", str(data_dir), "--port", str(port),
           "--workers", str(WORKERS), "--slots", str(SLOTS), "--console-dir", str(build)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while (url := _console_line(log)) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
            raise RuntimeError(f"xrunner up did not print a console link:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)
    try:
        yield ConsoleStack(proc, data_dir, f"http://127.0.0.1:{port}", url)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


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
