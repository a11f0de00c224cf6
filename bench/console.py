"""The web console on the embedded stack, in Debian's Chromium: first contentful paint and "list ready" with a cold
cache on loopback, the JS it ships (gzipped), the jobs list's frame rate while ~200 job events/s arrive (and the
list scrolls), and submit click → the first state chip. Writes bench/results/console[-TAG].json.

    ./dev console && .venv/bin/python bench/console.py
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, sync_playwright

from xrunner.cli.bench import percentiles
from xrunner.servicekit.auth import mint

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "web" / "console" / "dist"
RESULTS = Path(__file__).parent / "results"
BATCH = 10  # jobs per request of the event load (fewer requests: the client shares the two cores too)
FPS_PROBE = """(seconds) => new Promise((done) => {
  const list = document.querySelector('[data-testid=job-rows]');
  const frames = []; const start = performance.now(); let dir = 1;
  const tick = (t) => {
    frames.push(t);
    if (list) {
      list.scrollTop += dir * 40;
      if (list.scrollTop + list.clientHeight >= list.scrollHeight - 2 || list.scrollTop <= 0) dir = -dir;
    }
    if (t - start < seconds * 1000) requestAnimationFrame(tick); else done(frames);
  };
  requestAnimationFrame(tick);
})"""
CLICK_TO_CHIP = """() => new Promise((done, fail) => {
  const first = () => document.querySelector('[data-testid=submitted-job]')?.getAttribute('data-job-id');
  const before = first();
  const observer = new MutationObserver(() => {
    if (first() !== before) { observer.disconnect(); done(performance.now() - clicked); }
  });
  observer.observe(document.body, {subtree: true, childList: true, attributes: true});
  setTimeout(() => { observer.disconnect(); fail(new Error('no chip within 10 s')); }, 10000);
  const button = document.querySelector('button[type=submit]');
  const clicked = performance.now();
  button.click();
})"""


def start_stack(data_dir: Path, port: int, build: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
    log = (data_dir.parent / "up.log").open("wb")
    cmd = [sys.executable, "-m", "xrunner.cli", "up", "--data-dir", str(data_dir), "--port", str(port),
           "--console-dir", str(build)]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "console " not in (data_dir.parent / "up.log").read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((data_dir.parent / "up.log").read_text(errors="replace"))
        time.sleep(0.2)
    return proc


def js_sizes(build: Path) -> dict[str, Any]:
    """Every JS chunk's gzipped size (zlib's default level, as Vite reports), and what index.html loads at start."""
    chunks = {p.name: len(gzip.compress(p.read_bytes())) for p in sorted((build / "assets").glob("*.js"))}
    html = (build / "index.html").read_text()
    initial = [name for name in chunks if name in html]
    return {"chunks_gzip_bytes": chunks, "total_gzip_kib": round(sum(chunks.values()) / 1024, 1),
            "initial_gzip_kib": round(sum(chunks[n] for n in initial) / 1024, 1), "initial_chunks": initial}


def paint(browser: Browser, url: str, rounds: int) -> dict[str, Any]:
    """FCP and "list ready" (the jobs count shown) of a fresh context each round: nothing cached."""
    fcp, ready = [], []
    for _ in range(rounds):
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        page.get_by_test_id("job-count").wait_for()
        fcp.append(page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime"))
        ready.append(page.evaluate("performance.now()"))
        context.close()
    return {"fcp_ms": percentiles(fcp), "list_ready_ms": percentiles(ready)}


def submit_load(api: str, token: str, per_s: float, seconds: float, stop: threading.Event) -> dict[str, float]:
    """Echo jobs at `per_s` (each makes ~5 events: submitted, queued, dispatched, started, succeeded)."""
    sent, start = 0, time.monotonic()
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        while not stop.is_set() and time.monotonic() - start < seconds:
            batch = [{"workload": {"kind": "process", "argv": ["echo", "x"]}} for _ in range(BATCH)]
            client.post("/v1/jobs/batch", json={"jobs": batch})
            sent += BATCH
            time.sleep(max(0.0, start + sent / per_s - time.monotonic()))
    return {"jobs": sent, "seconds": round(time.monotonic() - start, 2)}


def listed_by_api(client: httpx.Client) -> int:
    count, cursor = 0, None
    while True:
        page = client.get("/v1/jobs", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        count += len(page["jobs"])
        cursor = page.get("next_cursor")
        if not cursor:
            return count


def fps_under_events(page: Page, api: str, token: str, preload: int, jobs_per_s: float,
                     seconds: float) -> dict[str, Any]:
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        sent = 0
        while sent < preload:
            answer = client.post("/v1/jobs/batch", json={"jobs": [{"workload": {"kind": "process", "argv": ["true"]}}]
                                                         * 200})
            if answer.status_code == 429:  # a limit: wait as told, then send the same batch again
                time.sleep(float(answer.headers.get("retry-after", "1")))
                continue
            answer.raise_for_status()
            sent += 200
        deadline = time.monotonic() + 600
        while listed_by_api(client) < preload:  # the read model is a projection: wait until it lists them all
            assert time.monotonic() < deadline, "the read model did not catch up in 10 min"
            time.sleep(2)
    page.reload()
    page.get_by_test_id("job-count").wait_for()
    listed = 0
    page.wait_for_function("() => parseInt(document.querySelector('[data-testid=job-count]').innerText) > 0")
    while "more available" in page.get_by_test_id("job-count").inner_text():  # every page in: the whole list
        page.locator("[data-testid=job-rows]").evaluate("el => { el.scrollTop = el.scrollHeight; }")
        page.wait_for_function("n => parseInt(document.querySelector('[data-testid=job-count]').innerText) > n",
                               arg=listed)
        listed = int(page.get_by_test_id("job-count").inner_text().split()[0])
    stop, load = threading.Event(), {}
    worker = threading.Thread(target=lambda: load.update(submit_load(api, token, jobs_per_s, seconds + 2, stop)))
    worker.start()
    time.sleep(1.0)  # let the load reach its rate before measuring
    frames: list[float] = page.evaluate(FPS_PROBE, seconds)
    stop.set()
    worker.join()
    gaps = [b - a for a, b in itertools.pairwise(frames)]
    return {"fps": round(len(frames) / seconds, 1), "frame_ms": percentiles(gaps), "listed": page.get_by_test_id(
        "job-count").inner_text(), "load": load, "events_per_s_approx": round(load["jobs"] * 5 / load["seconds"])}


def click_to_chip(page: Page, rounds: int) -> dict[str, Any]:
    page.get_by_label("Command").fill("echo hi")
    times = []
    for _ in range(rounds):
        times.append(page.evaluate(CLICK_TO_CHIP))
        page.get_by_role("button", name="Submit").wait_for()  # enabled again (not "Submitting…")
    return {"click_to_chip_ms": percentiles(times)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=28700)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--preload", type=int, default=10_000)
    parser.add_argument("--jobs-per-s", type=float, default=40.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tag", default="", help="written to bench/results/console-TAG.json")
    args = parser.parse_args()
    assert (BUILD / "index.html").is_file(), "build the console first: ./dev console"
    with tempfile.TemporaryDirectory(prefix="xr-console-bench-") as tmp:
        build = shutil.copytree(BUILD, Path(tmp) / "console")
        data = Path(tmp) / ".xrunner"
        proc = start_stack(data, args.port, build)
        try:
            api = f"http://127.0.0.1:{args.port}"
            secret = (data / "secret").read_text().strip()
            token = mint(secret, tenant="bench", subject="bench", scopes=["jobs:read", "jobs:write"], issuer="xrunner",
                         audience="xrunner", ttl_s=3600, now=int(time.time()))
            admin = mint(secret, tenant="ops", subject="ops", scopes=["admin"], issuer="xrunner", audience="xrunner",
                         ttl_s=3600, now=int(time.time()))
            httpx.put(f"{api}/v1/tenants/bench", headers={"Authorization": f"Bearer {admin}"}, timeout=30,
                      json={"submit_rate_per_s": 100_000, "max_queued": 1_000_000}).raise_for_status()
            url = f"{api}/console/#token={token}"
            result: dict[str, Any] = {"js": js_sizes(build)}
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
                result["paint"] = paint(browser, url, args.rounds)
                page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
                page.goto(f"{api}/console/submit#token={token}")
                result["submit"] = click_to_chip(page, args.rounds * 3)
                page.goto(url)
                result["list"] = fps_under_events(page, api, token, args.preload, args.jobs_per_s, args.seconds)
                browser.close()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
    result["machine"] = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"console{'-' + args.tag if args.tag else ''}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
