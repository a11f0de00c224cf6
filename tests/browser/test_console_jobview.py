"""The console's job, stats and admin pages in Chromium against the embedded stack: attach to an interactive `sh`
and drive it, a job's output in the live log (hostile bytes stay text), PNG and JSON artifact previews, the stats
and admin pages; each page is screenshotted to the results folder and may log no console error."""

from __future__ import annotations

import base64
import io
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from browser.console_harness import ConsoleStack
from xrunner.servicekit.auth import SCOPES

WAIT_MS = 30_000
# An 8 x 8 red PNG, written by the job itself (base64 -d) so that the worker collects it as an artifact.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR4nGO4o6GBFTEMLQkAe3tLAfuiUfAAAAAASUVORK5CYII="


def two_page_pdf() -> bytes:
    """A valid PDF of two blank pages (objects and cross-reference table written out by hand)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def small_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "alpha")
        archive.writestr("dir/b.txt", "b" * 300)
    return buffer.getvalue()


def submit(client: httpx.Client, argv: list[str], **spec: Any) -> str:
    workload = {"kind": "process", "argv": argv, **spec.pop("workload", {})}
    response = client.post("/v1/jobs", json={"workload": workload, **spec})
    assert response.status_code in (201, 202), response.text
    job_id: str = response.json()["job"]["id"]
    return job_id


def open_job(page: Page, stack: ConsoleStack, tenant: str, job_id: str) -> None:
    page.goto(stack.console_url(tenant, f"jobs/{job_id}"))
    expect(page.get_by_test_id("job-state")).to_be_visible(timeout=WAIT_MS)


def terminal_lines(terminal: Locator) -> list[str]:
    """The lines xterm shows (its DOM renderer's rows), trailing blanks removed."""
    return [line.rstrip() for line in terminal.locator(".xterm-rows").inner_text().replace("\xa0", " ").split("\n")]


def expect_line(terminal: Locator, wanted: Callable[[str], bool], what: str) -> None:
    """Polls the terminal (every 100 ms, up to WAIT_MS) until one of its lines is `wanted`."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not any(wanted(line) for line in terminal_lines(terminal)):
        assert time.monotonic() < deadline, f"no line {what!r} in {terminal_lines(terminal)}"
        terminal.page.wait_for_timeout(100)


def test_attach_to_an_interactive_sh_type_echo_and_exit(
        page: Page, console_stack: ConsoleStack, screenshot: Callable[[Page, str], Path]) -> None:
    with console_stack.client("attacher") as client:
        job_id = submit(client, ["sh"], workload={"interactive": True})
    open_job(page, console_stack, "attacher", job_id)
    page.get_by_role("button", name="Attach a terminal").click()
    expect(page.get_by_test_id("attach-status")).to_have_text("Attached.", timeout=WAIT_MS)
    terminal = page.get_by_test_id("attach-terminal")
    terminal.click()
    page.keyboard.type("echo hi")
    page.keyboard.press("Enter")
    expect_line(terminal, lambda line: line == "hi", "hi")  # the job's answer, beside the echoed "echo hi"
    assert "echo hi" in terminal_lines(terminal)
    screenshot(page, "job-attach")
    page.keyboard.type("exit")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("attach-end")).to_have_text(re.compile(r"The job ended: succeeded \(exit 0\)"),
                                                           timeout=WAIT_MS)
    expect(page.get_by_test_id("job-state")).to_contain_text("succeeded", timeout=WAIT_MS)


def test_the_live_log_shows_a_jobs_output_and_keeps_hostile_bytes_as_text(
        page: Page, console_stack: ConsoleStack, screenshot: Callable[[Page, str], Path]) -> None:
    script = ("echo first-$((20+22)); sleep 1; printf '\\033]0;pwned\\007\\033[2J<img src=x onerror=alert(1)>\\n';"
              " echo last-line")
    with console_stack.client("logger") as client:
        job_id = submit(client, ["sh", "-c", script])
    open_job(page, console_stack, "logger", job_id)
    log = page.get_by_test_id("live-log")
    expect_line(log, lambda line: line == "first-42", "first-42")
    expect_line(log, lambda line: line == "last-line", "last-line")
    assert any("<img src=x" in line for line in terminal_lines(log)), terminal_lines(log)
    assert page.locator("img[src='x']").count() == 0
    assert page.title() != "pwned"
    expect(page.get_by_test_id("job-state")).to_contain_text("succeeded", timeout=WAIT_MS)
    timeline = page.get_by_test_id("timeline")
    for event in ("job.submitted.v1", "job.queued.v1", "job.started.v1", "job.succeeded.v1"):
        expect(timeline.locator(f"li[data-type='{event}']")).to_have_count(1, timeout=WAIT_MS)
    screenshot(page, "job-log")


def test_the_timeline_shows_the_job_as_of_any_of_its_events(page: Page, console_stack: ConsoleStack) -> None:
    with console_stack.client("historian") as client:
        job_id = submit(client, ["sh", "-c", "exit 3"])
    open_job(page, console_stack, "historian", job_id)
    expect(page.get_by_test_id("job-state")).to_contain_text("failed", timeout=WAIT_MS)
    timeline = page.get_by_test_id("timeline")
    for event, state in (("job.submitted.v1", "submitted"), ("job.queued.v1", "queued"),
                         ("job.started.v1", "running"), ("job.failed.v1", "failed")):
        item = timeline.locator(f"li[data-type='{event}']")
        item.locator("summary").click()
        item.get_by_role("button", name="The job as of this event").click()
        then = item.locator("[data-testid^='as-of-']")
        expect(then).to_contain_text(state, timeout=WAIT_MS)
        if state == "failed":
            expect(then).to_contain_text("exit 3")
        else:
            expect(then).not_to_contain_text("exit")


def test_a_jobs_png_json_pdf_and_zip_artifacts_are_previewed(
        page: Page, console_stack: ConsoleStack, screenshot: Callable[[Page, str], Path]) -> None:
    pdf, archive = base64.b64encode(two_page_pdf()).decode(), base64.b64encode(small_zip()).decode()
    script = (f"mkdir -p out && echo {PNG_B64} | base64 -d > out/dot.png"
              " && printf '{\"answer\": 42, \"items\": [1, 2]}' > out/data.json"
              f" && echo {pdf} | base64 -d > out/doc.pdf && echo {archive} | base64 -d > out/bundle.zip")
    with console_stack.client("artist") as client:
        job_id = submit(client, ["sh", "-c", script], artifacts={"globs": ["out/*"]})
    open_job(page, console_stack, "artist", job_id)
    image = page.locator("[data-testid=artifact][data-name='out/dot.png'] img[data-testid=artifact-image]")
    expect(image).to_be_visible(timeout=WAIT_MS)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                           timeout=WAIT_MS)
    text = page.locator("[data-testid=artifact][data-name='out/data.json'] [data-testid=artifact-text]")
    expect(text).to_contain_text('"answer": 42', timeout=WAIT_MS)
    expect(text).to_have_attribute("data-json", "true")
    download = page.locator("[data-testid=artifact][data-name='out/data.json']").get_by_role("link")
    href = download.get_attribute("href") or ""
    assert re.search(r"/v1/blobs/\w+\?exp=\d+&kid=\w+&sig=", href), href
    assert httpx.get(href, timeout=10).json() == {"answer": 42, "items": [1, 2]}  # the signed URL, no token
    first_page = page.locator("[data-testid=artifact][data-name='out/doc.pdf'] img[data-testid=artifact-pdf]")
    expect(first_page).to_be_visible(timeout=WAIT_MS)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=first_page.element_handle(),
                           timeout=WAIT_MS)
    expect(page.locator("[data-testid=artifact][data-name='out/doc.pdf'] figcaption")).to_have_text("PDF · 2 pages")
    entries = page.locator("[data-testid=artifact][data-name='out/bundle.zip'] [data-testid=artifact-entries]")
    expect(entries).to_contain_text("dir/b.txt", timeout=WAIT_MS)
    expect(entries.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("log-status")).to_have_text("ended · the job printed nothing", timeout=WAIT_MS)
    screenshot(page, "job-artifacts")


def test_the_stats_page_shows_gauges_tenants_and_pools(
        page: Page, console_stack: ConsoleStack, screenshot: Callable[[Page, str], Path]) -> None:
    with console_stack.client("stats") as client:
        submit(client, ["true"])
    page.goto(console_stack.console_url("stats", "stats"))
    for gauge in ("running", "queued", "oldest_wait_s", "dispatch_p50_ms", "dispatch_p99_ms"):
        expect(page.get_by_test_id(f"gauge-{gauge}")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("pools")).to_contain_text("default", timeout=WAIT_MS)
    expect(page.get_by_test_id("tenants")).to_contain_text("stats", timeout=WAIT_MS)
    expect(page.get_by_test_id("gauge-running").locator("path")).to_have_count(1, timeout=WAIT_MS)
    screenshot(page, "stats")


def test_the_admin_page_edits_a_tenants_limits(
        page: Page, console_stack: ConsoleStack, screenshot: Callable[[Page, str], Path]) -> None:
    page.goto(f"{console_stack.api}/console/admin#token={console_stack.token('ops', tuple(SCOPES))}")
    page.get_by_label("Open or add a tenant").fill("budget")
    page.get_by_role("button", name="Open").click()
    form = page.locator("[data-testid=tenant][data-tenant=budget]")
    weight = form.get_by_label("Weight")
    expect(weight).to_have_value("1", timeout=WAIT_MS)
    weight.fill("0")
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_text("must be more than 0")).to_be_visible()
    weight.fill("3.5")
    form.get_by_label("Max in flight").fill("7")
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_text("Saved")).to_be_visible(timeout=WAIT_MS)
    with console_stack.admin() as admin:
        limits = admin.get("/v1/tenants/budget").json()
    assert (limits["weight"], limits["max_inflight"], limits["configured"]) == (3.5, 7, True)
    screenshot(page, "admin")


def test_the_admin_page_is_not_shown_without_the_admin_scope(page: Page, console_stack: ConsoleStack) -> None:
    page.goto(console_stack.console_url("plain", "admin"))
    expect(page.get_by_text("This page needs the admin scope.")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_label("Open or add a tenant")).to_have_count(0)




def sizes_shown(terminal: Locator) -> list[tuple[int, int]]:
    """The `rows cols` answers of `stty size` on the terminal's screen, in order."""
    return [(int(rows), int(cols)) for rows, cols in
            (line.split() for line in terminal_lines(terminal) if re.fullmatch(r"\d+ \d+", line))]


def wait_for_sizes(page: Page, terminal: Locator, count: int) -> list[tuple[int, int]]:
    """Polls the screen (every 100 ms, up to WAIT_MS) until it shows `count` answers of `stty size`."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while len(found := sizes_shown(terminal)) < count:
        assert time.monotonic() < deadline, terminal_lines(terminal)
        page.wait_for_timeout(100)
    return found


def test_a_tty_job_follows_the_terminals_size(page: Page, console_stack: ConsoleStack) -> None:
    with console_stack.client("sizer") as client:
        job_id = submit(client, ["sh"], workload={"interactive": True, "tty": True})
    open_job(page, console_stack, "sizer", job_id)
    page.get_by_role("button", name="Attach a terminal").click()
    expect(page.get_by_test_id("attach-status")).to_have_text("Attached.", timeout=WAIT_MS)
    terminal = page.get_by_test_id("attach-terminal")
    terminal.click()
    page.keyboard.type("stty size")
    page.keyboard.press("Enter")
    [(_, wide)] = wait_for_sizes(page, terminal, 1)
    page.set_viewport_size({"width": 800, "height": 800})  # the page refits the terminal and tells the job
    page.keyboard.type("stty size")
    page.keyboard.press("Enter")
    (_, narrow) = wait_for_sizes(page, terminal, 2)[-1]
    assert narrow < wide, (wide, narrow)
    page.keyboard.type("exit")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("attach-end")).to_contain_text("succeeded", timeout=WAIT_MS)


def test_a_waiting_job_says_why_and_can_be_cancelled_and_a_finished_one_rerun(
        page: Page, console_stack: ConsoleStack, screenshot: Callable[[Page, str], Path]) -> None:
    with console_stack.admin() as admin:
        configured = admin.put("/v1/tenants/waiter", json={"max_inflight": 0})
        assert configured.status_code == 200, configured.text
    with console_stack.client("waiter") as client:
        job_id = submit(client, ["echo", "never"])
    open_job(page, console_stack, "waiter", job_id)
    why = page.get_by_test_id("why-waiting")
    expect(why).to_contain_text("as many jobs in flight as its limit allows", timeout=WAIT_MS)
    screenshot(page, "job-waiting")
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("job-state")).to_contain_text("cancelled", timeout=WAIT_MS)
    expect(why).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.get_by_test_id("timeline").locator("li[data-type='job.cancelled.v1']")).to_have_count(1)
    page.get_by_role("button", name="Rerun").click()
    expect(page).not_to_have_url(re.compile(f"/jobs/{job_id}$"), timeout=WAIT_MS)
    rerun_id = page.url.rsplit("/", 1)[-1]
    with console_stack.client("waiter") as client:
        assert client.get(f"/v1/jobs/{rerun_id}").json()["spec"]["workload"]["argv"] == ["echo", "never"]
        history = client.get(f"/v1/jobs/{rerun_id}/events").json()
    assert history[0]["event"]["rerun_of"] == job_id
    expect(page.get_by_test_id("job-state")).to_contain_text("queued", timeout=WAIT_MS)
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("job-state")).to_contain_text("cancelled", timeout=WAIT_MS)
