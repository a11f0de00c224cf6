"""What the console's browser tests share: where the build and the results are, the running stack and its handles,
and the axe-core scan."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from e2e.conftest import free_base
from playwright.sync_api import ConsoleMessage, Page

from xrunner.servicekit.auth import SCOPES, mint

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_BUILD = ROOT / "web" / "console" / "dist"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
RESULTS = Path(os.environ.get("XR_BROWSER_RESULTS", ROOT / "tests" / "browser" / "results"))
WORKERS, SLOTS = 1, 3  # few slots, so that a test can fill them and hold a job in the queue


@dataclass
class ConsoleStack:
    """The running stack: its API, the console link `xrunner up` printed, and tokens minted with its secret."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    api: str
    signin_url: str

    def token(self, tenant: str, scopes: tuple[str, ...] = ("jobs:read", "jobs:write")) -> str:
        secret = (self.data_dir / "secret").read_text().strip()
        return mint(secret, tenant=tenant, subject=f"{tenant}-user", scopes=list(scopes), issuer="xrunner",
                    audience="xrunner", ttl_s=900, now=int(time.time()))

    def client(self, tenant: str, scopes: tuple[str, ...] = ("jobs:read", "jobs:write")) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {self.token(tenant, scopes)}"},
                            timeout=30)

    def admin(self) -> httpx.Client:
        return self.client("ops", tuple(SCOPES))

    def console_url(self, tenant: str, path: str = "") -> str:
        """A sign-in link like the printed one, for another tenant."""
        return f"{self.api}/console/{path}#token={self.token(tenant)}"


@contextlib.contextmanager
def console_stack_running(
    base: Path, port: int | None = None, settings: Mapping[str, str] | None = None
) -> Iterator[ConsoleStack]:
    """`xrunner up --console-dir` on a copy of the build (a rebuild meanwhile cannot disturb it) with these XR_
    settings in its environment and no other; yields once it printed the console's link, stops it after."""
    assert (CONSOLE_BUILD / "index.html").is_file(), "no console build: run ./dev console (./dev test builds it)"
    data_dir, log = base / ".xrunner", base / "up.log"
    build = shutil.copytree(CONSOLE_BUILD, base / "console")
    port = port or free_base()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")} | dict(settings or {})
    cmd = [sys.executable, "-m", "xrunner.cli", "up", "--data-dir", str(data_dir), "--port", str(port),
           "--workers", str(WORKERS), "--slots", str(SLOTS), "--console-dir", str(build)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while (url := _console_line(log)) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"xrunner up did not print a console link:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield ConsoleStack(proc, data_dir, f"http://127.0.0.1:{port}", url)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def _console_line(log: Path) -> str | None:
    found = re.search(r"^\s*console\s+(\S+)$", log.read_text(errors="replace"), re.MULTILINE)
    return found.group(1) if found else None


@dataclass
class Problems:
    """What went wrong in the page: console errors and uncaught exceptions."""

    seen: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # URLs whose failed load a test expects (a 404 it asked for)

    def console(self, msg: ConsoleMessage) -> None:
        url = msg.location.get("url", "")
        if msg.type == "error" and not any(e in url for e in self.expected):
            self.seen.append(f"console error: {msg.text} ({url})")


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core (from web/node_modules) run in the page: the violations of these impacts, one line each."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => (await axe.run(document)).violations")
    return [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in result if v["impact"] in impacts]
