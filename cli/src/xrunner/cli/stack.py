"""`xrunner up`: the embedded stack — nats-server, Postgres and every service as its own OS process, supervised
until Ctrl-C, with all state under one data directory so that it survives a restart."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from xrunner.cli import embedded

SERVICES = ("gateway", "realtime", "artifacts", "scheduler", "worker")


@dataclass
class StackOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8700
    nats_url: str | None = None
    database_url: str | None = None
    slots: int = 8
    sandbox: str = "bwrap"
    sync_always: bool = False
    warm_images: str = ""


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0

    def start(self) -> None:
        self.proc = embedded.spawn(self.argv, self.log, env=self.env)
        self.started_at = time.monotonic()


@dataclass
class Stack:
    opts: StackOptions
    infra: list[tuple[subprocess.Popen[bytes], signal.Signals]] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    @property
    def api_url(self) -> str:
        return f"http://{self.opts.host}:{self.opts.port}"

    @property
    def realtime_url(self) -> str:
        return f"http://{self.opts.host}:{self.port_of('realtime')}"

    def port_of(self, service: str) -> int:
        return self.opts.port + SERVICES.index(service)

    def secret(self) -> str:
        path = self.opts.data_dir / "secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def start_infra(self) -> tuple[str, str]:
        """Start what was not given as a URL; returns (nats_url, database_url)."""
        data = self.opts.data_dir
        nats_url = self.opts.nats_url
        if nats_url is None:
            port = self.opts.port + 22
            proc = embedded.start_nats(
                data / "nats", port, sync_always=self.opts.sync_always, log_file=data / "logs" / "nats.log"
            )
            self.infra.append((proc, signal.SIGTERM))
            nats_url = f"nats://127.0.0.1:{port}"
        database_url = self.opts.database_url
        if database_url is None:
            port = self.opts.port + 32
            proc = embedded.start_postgres(data / "pg", port, log_file=data / "logs" / "postgres.log")
            self.infra.append((proc, signal.SIGINT))
            marker = data / "pg" / ".xrunner-db"
            if not marker.exists():
                embedded.create_database("127.0.0.1", port, "xrunner")
                marker.write_text("xrunner\n")
            database_url = embedded.database_url("127.0.0.1", port, "xrunner")
        return nats_url, database_url

    def start_services(self, nats_url: str, database_url: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
        env.update(
            XR_NATS_URL=nats_url,
            XR_DATABASE_URL=database_url,
            XR_JWT_SECRET=self.secret(),
            XR_HTTP_HOST=self.opts.host,
            XR_SYNC_ALWAYS=str(self.opts.sync_always).lower(),
            XR_WORKER_SLOTS=str(self.opts.slots),
            XR_WORKER_SANDBOX=self.opts.sandbox,
            XR_WORKER_WARM_IMAGES=self.opts.warm_images,
            XR_WORKER_WORKSPACE_DIR=str((self.opts.data_dir / "work").resolve()),
            XR_WORKER_ARTIFACT_DIR=str((self.opts.data_dir / "artifacts").resolve()),
            XR_WORKER_WORKER_ID=f"embedded-{self.opts.port}",  # stable: a restart cleans up its previous life
        )
        for name in SERVICES:
            child_env = {**env, f"XR_{name.upper()}_HTTP_PORT": str(self.port_of(name))}
            child = Child(
                name, [sys.executable, "-m", f"xrunner.{name}"], child_env, self.opts.data_dir / "logs" / f"{name}.log"
            )
            child.start()
            self.children.append(child)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        for child in self.children:
            url = f"http://{self.opts.host}:{self.port_of(child.name)}/readyz"
            while True:
                assert child.proc is not None
                if child.proc.poll() is not None:
                    raise RuntimeError(f"{child.name} exited with {child.proc.returncode}; see {child.log}")
                try:
                    if httpx.get(url, timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{child.name} not ready after {timeout:.0f}s; see {child.log}")
                time.sleep(0.1)

    def supervise_once(self) -> list[str]:
        """Restart services that died (with a growing delay); returns the names restarted."""
        restarted = []
        for child in self.children:
            assert child.proc is not None
            if child.proc.poll() is None:
                continue
            if time.monotonic() - child.started_at < min(30.0, 0.5 * 2**child.restarts):
                continue
            child.restarts += 1
            child.start()
            restarted.append(child.name)
        return restarted

    def stop(self) -> None:
        """Stop services first (they drain), then Postgres and NATS; nothing started here outlives this."""
        self.stopping = True
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                embedded.signal_group(child.proc, signal.SIGTERM)
        for child in self.children:
            if child.proc is not None:
                embedded.stop(child.proc, timeout=40.0)
        for proc, sig in reversed(self.infra):
            embedded.stop(proc, sig=sig)
