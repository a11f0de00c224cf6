"""The console's job page in Chromium against a private embedded stack: how soon a job's output is on screen after
the job wrote it (live log), and how soon a key typed into an attached tty job is echoed on screen. Writes
bench/results/console-pages.json and a line in bench/results/SUMMARY.md.

    .venv/bin/python bench/console_pages.py [--lines 200] [--keys 50]     # needs ./dev console and chromium

Output latency is measured in the page: each line the job prints is `T<date +%s%N>`, and a MutationObserver on the
terminal's rows takes Date.now() when a line first appears (one machine, one clock). Echo latency is measured from
here: the time from Playwright's key press to the echoed key on screen (polled every animation frame), so it
includes the DevTools protocol's round trips and up to a frame of polling: an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright
from run import RESULTS, _free_base

from xrunner.cli.bench import percentiles
from xrunner.servicekit.auth import mint

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "web" / "console" / "dist"
WAIT_MS = 60_000

OBSERVE = """() => {
  const rows = document.querySelector('[data-testid=live-log] .xterm-rows');
  const seen = new Set(); const lat = []; window.__latencies = lat;
  const scan = (record) => {
    for (const m of rows.textContent.matchAll(/T(\\d{19})/g)) {
      if (seen.has(m[1])) continue;
      seen.add(m[1]);
      if (record) lat.push(Date.now() - Number(BigInt(m[1]) / 1000000n));
    }
  };
  scan(false);
  new MutationObserver(() => scan(true)).observe(rows, { childList: true, subtree: true, characterData: true });
}"""


class ConsoleStack:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="xr-bench-console-")) / ".xrunner"
        self.port = _free_base()
        self.api = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "xrunner.cli", "up", "--data-dir", str(self.dir), "--port", str(self.port),
                "--console-dir", str(BUILD)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("stack did not start")
            time.sleep(0.2)

    def _ready(self) -> bool:
        if not (self.dir / "env").exists():
            return False
        try:
            return httpx.get(f"{self.api}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def token(self, tenant: str) -> str:
        secret = (self.dir / "secret").read_text().strip()
        return mint(secret, tenant=tenant, subject="bench", scopes=["jobs:read", "jobs:write"], issuer="xrunner",
                    audience="xrunner", ttl_s=3600, now=int(time.time()))

    def submit(self, tenant: str, workload: dict[str, object]) -> str:
        response = httpx.post(f"{self.api}/v1/jobs", json={"workload": workload}, timeout=30,
                              headers={"Authorization": f"Bearer {self.token(tenant)}"})
        response.raise_for_status()
        job_id: str = response.json()["job"]["id"]
        return job_id

    def open_job(self, page: Page, tenant: str, job_id: str) -> None:
        page.goto(f"{self.api}/console/jobs/{job_id}#token={self.token(tenant)}")
        page.get_by_test_id("job-state").wait_for(timeout=WAIT_MS)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)


def output_latency(stack: ConsoleStack, page: Page, lines: int) -> list[float]:
    """Submits a job that waits 2 s, then prints `lines` timestamped lines 20 ms apart, and collects when each
    appeared on screen."""
    script = f"sleep 2; i=0; while [ $i -lt {lines} ]; do echo T$(date +%s%N); i=$((i+1)); sleep 0.02; done"
    job_id = stack.submit("bench-log", {"kind": "process", "argv": ["sh", "-c", script]})
    stack.open_job(page, "bench-log", job_id)
    page.locator("[data-testid=live-log] .xterm-rows").wait_for(timeout=WAIT_MS)
    page.evaluate(OBSERVE)
    page.get_by_test_id("job-state").get_by_text("succeeded").wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(500)  # the last lines' frame
    latencies: list[float] = page.evaluate("window.__latencies")
    return latencies


def echo_latency(stack: ConsoleStack, page: Page, keys: int) -> list[float]:
    """Attaches to a tty `sh`, then types `keys` times one key and times until the pty's echo is on screen."""
    job_id = stack.submit("bench-tty", {"kind": "process", "argv": ["sh"], "interactive": True, "tty": True})
    stack.open_job(page, "bench-tty", job_id)
    page.get_by_role("button", name="Attach a terminal").click()
    page.get_by_test_id("attach-status").get_by_text("Attached.").wait_for(timeout=WAIT_MS)
    rows = "[data-testid=attach-terminal] .xterm-rows"
    page.locator("[data-testid=attach-terminal]").click()
    page.keyboard.type("echo ready")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => /^ready$/m.test(document.querySelector('{rows}').innerText)", timeout=WAIT_MS)
    samples = []
    for n in range(1, keys + 1):
        start = time.perf_counter()
        page.keyboard.press("z")
        page.wait_for_function(f"n => (document.querySelector('{rows}').textContent.match(/z/g) || []).length >= n",
                               arg=n, polling="raf", timeout=WAIT_MS)
        samples.append((time.perf_counter() - start) * 1000)
    page.keyboard.press("Control+U")
    page.keyboard.type("exit")
    page.keyboard.press("Enter")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--keys", type=int, default=50)
    args = parser.parse_args()
    assert (BUILD / "index.html").is_file(), "no console build: run ./dev console"
    chromium = shutil.which("chromium")
    assert chromium, "install Debian's chromium"
    stack = ConsoleStack()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            shown = output_latency(stack, page, args.lines)
            echoed = echo_latency(stack, page, args.keys)
            browser.close()
    finally:
        stack.stop()
    result = {
        "output_on_screen_ms": percentiles(shown), "output_lines_seen": len(shown), "output_lines": args.lines,
        "key_echo_ms": percentiles(echoed), "keys": args.keys,
        "load_average_before": list(os.getloadavg()), "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{os.cpu_count()} cores",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "console-pages.json").write_text(json.dumps(result, indent=2) + "\n")
    with (RESULTS / "SUMMARY.md").open("a") as f:
        f.write(f"- `console-pages`: {json.dumps(result)}\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
