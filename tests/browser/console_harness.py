"""What the console's browser tests share: where the build and the results are, the running stack's handles, and
the axe-core scan."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
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
