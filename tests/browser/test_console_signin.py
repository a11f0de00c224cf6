"""Signing in to the console: the link `xrunner up` prints carries the token in the URL fragment (never sent to a
server), the console keeps it in this tab's sessionStorage and takes it out of the address bar; a tenant cannot
open another tenant's job."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Request, expect

from browser.console_harness import ConsoleStack, Problems


def test_the_printed_link_signs_the_browser_in_and_the_token_leaves_the_address_bar(
    console_stack: ConsoleStack, page: Page
) -> None:
    token = console_stack.signin_url.split("#token=", 1)[1]
    requests: list[Request] = []
    page.on("request", lambda r: requests.append(r))
    page.goto(console_stack.signin_url)
    expect(page.get_by_test_id("principal")).to_contain_text("tenant dev")
    assert token not in page.url and "#" not in page.url
    assert page.evaluate("sessionStorage.getItem('xrunner.token')") == token
    assert [r.url for r in requests if token in r.url] == []  # tickets, not the token, go into stream URLs
    page.reload()  # the session survives a reload of the tab
    expect(page.get_by_test_id("principal")).to_contain_text("tenant dev")


def test_a_pasted_token_signs_in_and_sign_out_forgets_it(console_stack: ConsoleStack, page: Page) -> None:
    page.goto(f"{console_stack.api}/console/")
    expect(page).to_have_url(re.compile(r"/console/signin$"))
    page.get_by_label("Bearer token").fill(console_stack.token("pasted"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("principal")).to_contain_text("tenant pasted")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Bearer token")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('xrunner.token')") is None


def test_another_tenants_job_url_shows_not_found(console_stack: ConsoleStack, page: Page, problems: Problems) -> None:
    with console_stack.client("other") as other:
        job = other.post("/v1/jobs", json={"workload": {"kind": "process", "argv": ["true"]}}).json()["job"]
    problems.expected.append(job["id"])  # the browser logs the API's 404s for it; nothing else may fail
    page.goto(console_stack.console_url("mine", f"jobs/{job['id']}"))
    expect(page.get_by_text(re.compile("not found", re.IGNORECASE)).first).to_be_visible(timeout=15_000)
