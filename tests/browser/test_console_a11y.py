"""Every page of the console: no serious or critical axe-core findings, in the light and the dark theme, and a
screenshot of each (the README shows two)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser.console_harness import ConsoleStack, axe_violations

PAGES = {"jobs": "", "submit": "submit", "stats": "stats", "admin": "admin", "job": "jobs/{job}"}


@pytest.fixture(scope="module")
def job_id(console_stack: ConsoleStack) -> str:
    with console_stack.client("viewer") as api:
        answer = api.post("/v1/jobs", json={"workload": {"kind": "process", "argv": ["echo", "a11y"]}})
    job: str = answer.json()["job"]["id"]
    return job


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_has_no_serious_accessibility_violations(
    console_stack: ConsoleStack, page: Page, job_id: str, name: str, theme: str,
    screenshot: Callable[[Page, str], Path],
) -> None:
    page.emulate_media(color_scheme=theme)
    page.goto(console_stack.console_url("viewer", PAGES[name].format(job=job_id)))
    expect(page.get_by_test_id("principal")).to_be_visible()
    expect(page.locator("main h1").first).to_be_visible()
    assert axe_violations(page) == []
    screenshot(page, f"{name}-{theme}")


def test_the_sign_in_page_has_no_serious_accessibility_violations(console_stack: ConsoleStack, page: Page) -> None:
    page.goto(f"{console_stack.api}/console/signin")
    expect(page.get_by_label("Bearer token")).to_be_visible()
    assert axe_violations(page) == []
