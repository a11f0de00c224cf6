"""The jobs list and the submit form against the embedded stack: states move live over SSE (no reload, no
polling), and the submit button is off, with the reason, while the tenant is at a limit."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from browser.console_harness import SLOTS, WORKERS, ConsoleStack, Problems

ORDER = ["submitted", "queued", "dispatched", "running", "succeeded"]
RECORD_STATES = """(selector) => {
  window.__states = [];
  const seen = () => {
    const chip = document.querySelector(selector);
    const state = chip && chip.getAttribute("data-state");
    if (state && window.__states[window.__states.length - 1] !== state) window.__states.push(state);
  };
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


def _running(client: httpx.Client, ids: list[str], deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while {client.get(f"/v1/jobs/{i}").json()["state"] for i in ids} != {"running"}:
        assert time.monotonic() < deadline, "the blockers did not start"
        time.sleep(0.1)


def test_an_echo_submitted_from_the_form_goes_queued_running_succeeded_without_a_reload(
    console_stack: ConsoleStack, page: Page, screenshot: Callable[[Page, str], Path]
) -> None:
    # Every slot is taken by another tenant's job, so the form's job is held in the queue until they are cancelled.
    blocker = console_stack.client("blocker")
    spec = {"workload": {"kind": "process", "argv": ["sleep", "300"]}}
    blockers = [blocker.post("/v1/jobs", json=spec).json()["job"]["id"] for _ in range(WORKERS * SLOTS)]
    _running(blocker, blockers)
    page.goto(console_stack.console_url("acme", "submit"))
    loads: list[str] = []
    page.on("load", lambda p: loads.append(p.url))
    page.evaluate(RECORD_STATES, "[data-testid=submitted-job] [data-state]")
    page.get_by_label("Command").fill("sh -c 'sleep 1; echo hello'")
    page.get_by_role("button", name="Submit").click()
    chip = page.get_by_test_id("submitted-job").first.locator("[data-state]")
    expect(chip).to_have_attribute("data-state", "queued")
    for job_id in blockers:
        blocker.post(f"/v1/jobs/{job_id}/cancel", json={})
    expect(chip).to_have_attribute("data-state", "succeeded", timeout=30_000)
    states = page.evaluate("window.__states")
    assert "queued" in states and "running" in states and states[-1] == "succeeded", states
    assert [s for s in states if s in ORDER] == sorted((s for s in states if s in ORDER), key=ORDER.index), states
    assert loads == []  # no reload: the states came over the event stream
    screenshot(page, "submit")


def test_the_jobs_list_shows_new_jobs_and_their_states_live(console_stack: ConsoleStack, page: Page,
                                                           screenshot: Callable[[Page, str], Path]) -> None:
    page.goto(console_stack.console_url("lister"))
    expect(page.get_by_test_id("job-count")).to_contain_text("0 jobs")
    with console_stack.client("lister") as api:
        job = api.post("/v1/jobs", json={"workload": {"kind": "process", "argv": ["echo", "listed"]},
                                         "labels": {"team": "ml"}}).json()["job"]
    row = page.locator(f"[data-job-id='{job['id']}']")
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "succeeded", timeout=30_000)
    failed = page.get_by_label("failed", exact=True)
    failed.click()  # a state filter that leaves the job out (the filters live in the URL)
    expect(failed).to_be_checked()
    expect(page).to_have_url(re.compile(r"state=failed"))
    expect(row).to_have_count(0)
    failed.click()
    expect(failed).not_to_be_checked()
    page.get_by_label("Label (key=value)").fill("team=ml")
    page.get_by_label("Label (key=value)").press("Enter")
    expect(row).to_have_count(1)
    screenshot(page, "jobs")


def test_a_tenant_at_its_limit_sees_submit_disabled_with_the_reason(console_stack: ConsoleStack, page: Page) -> None:
    with console_stack.admin() as admin:
        admin.put("/v1/tenants/limited", json={"max_inflight": 1}).raise_for_status()
    api = console_stack.client("limited")
    held = api.post("/v1/jobs", json={"workload": {"kind": "process", "argv": ["sleep", "300"]}}).json()["job"]
    _running(api, [held["id"]])
    page.goto(console_stack.console_url("limited", "submit"))
    expect(page.get_by_test_id("submit-reason")).to_contain_text("in-flight limit (1 of 1 running)")
    expect(page.get_by_role("button", name="Submit")).to_be_disabled()
    api.post(f"/v1/jobs/{held['id']}/cancel", json={})  # the cue clears when the job ends (pushed by its event)
    expect(page.get_by_role("button", name="Submit")).to_be_enabled(timeout=20_000)
    expect(page.get_by_test_id("submit-reason")).to_have_count(0)


def test_a_400_is_shown_at_the_field_it_names_and_a_template_restores_the_form(
    console_stack: ConsoleStack, page: Page, problems: Problems
) -> None:
    problems.expected.append("/v1/jobs")  # the browser logs the 400 this test asks for
    page.goto(console_stack.console_url("formy", "submit"))
    page.get_by_label("Command").fill("echo templated")
    page.get_by_label("Memory (MiB)").fill("0")  # the contracts want ≥ 1: the gateway answers 400 at the field
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_test_id("error-f-memoryMib")).to_contain_text("memory_mib")
    expect(page.get_by_label("Memory (MiB)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Memory (MiB)")).to_be_focused()
    page.get_by_label("Save as").fill("echo-small")
    page.get_by_role("button", name="Save", exact=True).click()
    page.reload()  # templates live in localStorage
    page.get_by_label("Template", exact=True).select_option("echo-small")
    page.get_by_role("button", name="Load").click()
    expect(page.get_by_label("Command")).to_have_value("echo templated")
