"""Services as separate OS processes on the test's own NATS and database, for tests that kill and restart them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from xrunner.cli import embedded
from xrunner.servicekit.auth import SCOPES, mint

SECRET = "integration-secret-of-at-least-32-bytes"


@dataclass
class Cluster:
    nats_url: str
    database_url: str
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    launched: dict[str, tuple[str, dict[str, object], int]] = field(default_factory=dict)  # and the log's size

    def start(self, name: str, service: str, wait: bool = True, **settings: object) -> subprocess.Popen[bytes]:
        """Start `python -m xrunner.<service>` as `name` with `XR_<SERVICE>_<KEY>` settings."""
        port = embedded.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
        env |= {"XR_NATS_URL": self.nats_url, "XR_DATABASE_URL": self.database_url, "XR_JWT_SECRET": SECRET,
                f"XR_{service.upper()}_HTTP_PORT": str(port)}
        if service == "gateway":  # tests poll hard; the request rate limit has its own tests
            settings = {"request_rate_per_s": 0, **settings}
        env |= {f"XR_{service.upper()}_{k.upper()}": str(v) for k, v in settings.items()}
        log = self.logs / f"{name}.log"
        self.launched[name] = (service, settings, log.stat().st_size if log.exists() else 0)
        proc = embedded.spawn([sys.executable, "-m", f"xrunner.{service}"], log, env=env)
        self.procs[name], self.ports[name] = proc, port
        if wait:
            self.wait_ready(name)
        return proc

    def wait_ready(self, name: str, timeout: float = 30) -> None:
        """Until `name`'s own process answers /readyz 200 (the port was free when picked, not reserved: another
        test's server may take it first — then this one could not bind, and starts again on another port)."""
        deadline, relaunched = time.monotonic() + timeout, 0
        while True:
            proc = self.procs[name]
            if proc.poll() is not None:
                service, settings, since = self.launched[name]
                said = (self.logs / f"{name}.log").read_bytes()[since:]
                if relaunched < 5 and b"address already in use" in said.lower():
                    relaunched += 1
                    self.start(name, service, wait=False, **settings)
                    continue
                raise RuntimeError(f"{name} exited {proc.returncode}: {self.log(name)[-3000:]}")
            if embedded.serves(f"{self.api(name)}/readyz", proc.pid, timeout=1):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready: {self.log(name)[-3000:]}")
            time.sleep(0.05)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        proc = self.procs[name]
        os.kill(proc.pid, sig)
        proc.wait(30)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                embedded.signal_group(proc, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                embedded.signal_group(proc, signal.SIGKILL)
                proc.wait(5)

    def api(self, name: str = "gateway") -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def client(self, tenant: str, scopes: tuple[str, ...] = SCOPES) -> httpx.AsyncClient:
        token = mint(SECRET, tenant=tenant, subject=f"{tenant}-tester", scopes=list(scopes), issuer="xrunner",
                     audience="xrunner", ttl_s=900, now=int(time.time()))
        return httpx.AsyncClient(base_url=self.api(), headers={"Authorization": f"Bearer {token}"}, timeout=30)
