"""`xrunner up`: the embedded stack — nats-server, Postgres and every service as its own OS process, supervised
until Ctrl-C, with all state under one data directory so that it survives a restart."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx

from xrunner.cli import embedded
from xrunner.cli.supervisor import Child, Supervisor

SERVICES = ("gateway", "realtime", "artifacts", "scheduler", "worker")
SERVICE_START_TIMEOUT = 90.0


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
class Stack:
    opts: StackOptions
    supervisor: Supervisor = field(default_factory=Supervisor)

    @property
    def api_url(self) -> str:
        return f"http://{self.opts.host}:{self.opts.port}"

    @property
    def realtime_url(self) -> str:
        return f"http://{self.opts.host}:{self.port_of('realtime')}"

    @property
    def artifacts_url(self) -> str:
        return f"http://{self.opts.host}:{self.port_of('artifacts')}"

    def port_of(self, service: str) -> int:
        return self.opts.port + SERVICES.index(service)

    def secret(self) -> str:
        return self._secret_file("secret")

    def metrics_token(self) -> str:
        """The bearer token that shows per-tenant metrics (Prometheus: `authorization.credentials_file`)."""
        return self._secret_file("metrics-token")

    def _secret_file(self, name: str) -> str:
        path = self.opts.data_dir / name
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def start_infra(self) -> tuple[str, str]:
        """Start (side by side) what was not given as a URL; returns (nats_url, database_url)."""
        data, logs = self.opts.data_dir, self.opts.data_dir / "logs"
        started: list[Child] = []
        nats_url, database_url = self.opts.nats_url, self.opts.database_url
        if nats_url is None:
            port = self.opts.port + 22
            launch = partial(embedded.launch_nats, data / "nats", port, sync_always=self.opts.sync_always,
                             log_file=logs / "nats.log")
            started.append(Child("nats-server", launch, layer=0))
            nats_url = f"nats://127.0.0.1:{port}"
        if database_url is None:
            port = self.opts.port + 32
            launch = partial(embedded.launch_postgres, data / "pg", port, log_file=logs / "postgres.log")
            started.append(Child("postgres", launch, layer=0, stop_signal=signal.SIGINT))  # SIGINT: fast shutdown
        self.supervisor.add(*started)
        self.supervisor.wait_ready(*started)
        return nats_url, database_url or self._embedded_database(self.opts.port + 32)

    def _embedded_database(self, port: int) -> str:
        """The embedded cluster's `xrunner` database, created on first use."""
        marker = self.opts.data_dir / "pg" / ".xrunner-db"
        if not marker.exists():
            embedded.create_database("127.0.0.1", port, "xrunner")
            marker.write_text("xrunner\n")
        return embedded.database_url("127.0.0.1", port, "xrunner")

    def start_services(self, nats_url: str, database_url: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
        env.update(
            XR_NATS_URL=nats_url,
            XR_DATABASE_URL=database_url,
            XR_JWT_SECRET=self.secret(),
            XR_METRICS_TOKEN=self.metrics_token(),
            XR_HTTP_HOST=self.opts.host,
            XR_SYNC_ALWAYS=str(self.opts.sync_always).lower(),
            XR_WORKER_SLOTS=str(self.opts.slots),
            XR_WORKER_SANDBOX=self.opts.sandbox,
            XR_WORKER_WARM_IMAGES=self.opts.warm_images,
            XR_WORKER_WORKSPACE_DIR=str((self.opts.data_dir / "work").resolve()),
            XR_WORKER_ARTIFACT_DIR=str((self.opts.data_dir / "artifacts").resolve()),
            XR_ARTIFACTS_ARTIFACT_DIR=str((self.opts.data_dir / "artifacts").resolve()),
            XR_ARTIFACTS_SIGNING_KEYS=f"k1:{self._secret_file('artifact-signing-key')}",
            XR_ARTIFACTS_PUBLIC_URL=self.artifacts_url,
            XR_GATEWAY_ARTIFACTS_URL=self.artifacts_url,
            XR_WORKER_WORKER_ID=f"embedded-{self.opts.port}",  # stable: a restart cleans up its previous life
        )
        self.supervisor.add(*(Child(name, partial(self._launch_service, name, env), layer=1, stop_timeout=40.0)
                              for name in SERVICES))

    def _launch_service(self, name: str, env: dict[str, str]) -> embedded.Launched:
        log_file = self.opts.data_dir / "logs" / f"{name}.log"
        env = {**env, f"XR_{name.upper()}_HTTP_PORT": str(self.port_of(name))}
        proc = embedded.spawn([sys.executable, "-m", f"xrunner.{name}"], log_file, env=env)
        url = f"http://{self.opts.host}:{self.port_of(name)}/readyz"
        return embedded.Launched(proc, partial(_serves, url), name, log_file, SERVICE_START_TIMEOUT)

    def wait_ready(self) -> None:
        self.supervisor.wait_ready(*(c for c in self.supervisor.children if c.layer == 1))

    def supervise_once(self) -> list[str]:
        """Restart what died, with back-off; returns what happened, one line each, also kept in
        logs/supervisor.log."""
        lines = self.supervisor.tick()
        if lines:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            with (self.opts.data_dir / "logs" / "supervisor.log").open("a") as log:
                log.writelines(f"{stamp} {line}\n" for line in lines)
        return lines

    def stop(self) -> None:
        """Stop the services first (they drain), then Postgres and NATS; nothing started here outlives this."""
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        self.supervisor.stop()


def _serves(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False
