"""`xrunner up`: the embedded stack — nats-server, Postgres and every service as its own OS process, supervised
until Ctrl-C, with all state under one data directory so that it survives a restart."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from xrunner.cli import embedded
from xrunner.cli.supervisor import Child, Supervisor

SERVICES = ("gateway", "realtime", "artifacts", "scheduler", "worker")
SERVICE_START_TIMEOUT = 90.0
# Out of the box the embedded stack runs 100 jobs at once: a pool of worker processes (one Python process spends
# ~5 ms of CPU per job, so more than one keeps both cores busy), each with its share of the slots. On two cores,
# 2 x 50 started a burst of 100 `sleep 1` sooner than 4 x 25 or 1 x 100 (docs/benchmarks.md).
DEFAULT_WORKERS = 2
DEFAULT_SLOTS = 50
EXTRA_WORKER_PORTS = 40  # worker i > 0 listens on port + 40 + i (nats-server takes +22, Postgres +32)
# `--cluster 3`: node i serves clients on port + 22 + i, routes on + 25 + i, monitoring on + 28 + i.
CLUSTER_SIZES = (1, 3)
NATS_PORT, ROUTE_PORT, MONITOR_PORT = 22, 25, 28
# The only XR_ settings `xrunner up` passes from its own environment to the services (docs/console.md#sign-in): an
# identity provider whose tokens the stack accepts, and the console's OIDC sign-in with it.
IDENTITY_SETTINGS = (
    "XR_JWKS_URL", "XR_JWKS_FILE", "XR_JWT_ISSUER", "XR_JWT_AUDIENCE", "XR_JWT_ALGORITHMS", "XR_JWT_LEEWAY_S",
    "XR_TENANT_CLAIM", "XR_GATEWAY_TENANT_CLAIM", "XR_REALTIME_TENANT_CLAIM", "XR_ARTIFACTS_TENANT_CLAIM",
    "XR_GATEWAY_CONSOLE_OIDC_ISSUER", "XR_GATEWAY_CONSOLE_OIDC_CLIENT_ID", "XR_GATEWAY_CONSOLE_OIDC_SCOPE",
    "XR_GATEWAY_CONSOLE_OIDC_AUDIENCE", "XR_GATEWAY_CONSOLE_TOKEN_SIGNIN",
)


def identity_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The identity provider's settings present in `environ`."""
    return {name: environ[name] for name in IDENTITY_SETTINGS if name in environ}


@dataclass
class StackOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8700
    nats_url: str | None = None
    database_url: str | None = None
    slots: int = DEFAULT_SLOTS  # per worker process
    workers: int = DEFAULT_WORKERS
    sandbox: str = "bwrap"
    sync_always: bool = False
    warm_images: str = ""
    warm_shells: int = 8  # per worker process: process jobs start in a shell started ahead (0: none)
    cluster: int = 1  # nats-server nodes; 3 runs a JetStream cluster with every stream and bucket at R3
    console_dir: Path | None = None  # the web console's build, served by the gateway at /console/
    identity: dict[str, str] = field(default_factory=dict)  # IDENTITY_SETTINGS, passed to every service

    @property
    def external_tokens(self) -> bool:
        """Whether the services accept an identity provider's tokens (its JWKS) instead of the stack's own."""
        return bool(self.identity.get("XR_JWKS_URL") or self.identity.get("XR_JWKS_FILE"))


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

    @property
    def console_url(self) -> str | None:
        return f"{self.api_url}/console/" if self.opts.console_dir else None

    def port_of(self, service: str) -> int:
        return self.opts.port + SERVICES.index(service)

    def worker_port(self, index: int) -> int:
        return self.port_of("worker") if index == 0 else self.opts.port + EXTRA_WORKER_PORTS + index

    def worker_names(self) -> list[str]:
        """`worker` for the first worker process (as before), `worker-2`, `worker-3` ... for the others."""
        return ["worker" if i == 0 else f"worker-{i + 1}" for i in range(self.opts.workers)]

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
        if nats_url is None and self.opts.cluster > 1:
            nodes = self.nats_nodes()
            for node in nodes:
                launch = partial(embedded.launch_nats_node, data / "nats" / node.name, node, nodes,
                                 sync_always=self.opts.sync_always, log_file=logs / f"nats-{node.name}.log")
                started.append(Child(f"nats-server {node.name}", launch, layer=0))
            nats_url = ",".join(node.url() for node in nodes)
        elif nats_url is None:
            port = self.opts.port + NATS_PORT
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

    def nats_nodes(self) -> list[embedded.NatsNode]:
        """The embedded JetStream cluster's nodes: names and ports fixed by the base port, so a restarted node
        rejoins under its name with its store (`<data dir>/nats/<name>`)."""
        base = self.opts.port
        ports = [(base + NATS_PORT + i, base + ROUTE_PORT + i, base + MONITOR_PORT + i)
                 for i in range(self.opts.cluster)]
        return embedded.nats_cluster(ports)

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
            XR_METRICS_TOKEN=self.metrics_token(),
            XR_HTTP_HOST=self.opts.host,
            XR_SYNC_ALWAYS=str(self.opts.sync_always).lower(),
            XR_STREAM_REPLICAS=str(self.opts.cluster),
            # a stable identity: a scheduler restarted after a crash takes its own lease over at once
            XR_SCHEDULER_SCHEDULER_ID=f"embedded-{self.opts.port}",
            XR_WORKER_SLOTS=str(self.opts.slots),
            XR_WORKER_SANDBOX=self.opts.sandbox,
            XR_WORKER_WARM_IMAGES=self.opts.warm_images,
            XR_WORKER_WARM_SHELLS=str(self.opts.warm_shells),
            XR_WORKER_WORKSPACE_DIR=str((self.opts.data_dir / "work").resolve()),
            XR_WORKER_ARTIFACT_DIR=str((self.opts.data_dir / "artifacts").resolve()),
            XR_ARTIFACTS_ARTIFACT_DIR=str((self.opts.data_dir / "artifacts").resolve()),
            XR_ARTIFACTS_SIGNING_KEYS=f"k1:{self._secret_file('artifact-signing-key')}",
            XR_ARTIFACTS_PUBLIC_URL=self.artifacts_url,
            XR_GATEWAY_ARTIFACTS_URL=self.artifacts_url,
        )
        # The stack's secret signs its own tokens; with an identity provider's JWKS, only the stream tickets.
        env["XR_TICKET_SECRET" if self.opts.external_tokens else "XR_JWT_SECRET"] = self.secret()
        env.update(self.opts.identity)
        if self.opts.console_dir:  # the console, served by the gateway, reads the other two from its origin
            origins = json.dumps([self.api_url])
            env.update(XR_GATEWAY_CONSOLE_DIR=str(self.opts.console_dir.resolve()),
                       XR_GATEWAY_REALTIME_URL=self.realtime_url,
                       XR_REALTIME_CORS_ORIGINS=origins, XR_ARTIFACTS_CORS_ORIGINS=origins)
        children = [Child(name, partial(self._launch_service, name, name, self.port_of(name), env), layer=1,
                          stop_timeout=40.0) for name in SERVICES if name != "worker"]
        for i, name in enumerate(self.worker_names()):
            # A stable id per worker process: a restart cleans up what its previous life left.
            worker_env = {**env, "XR_WORKER_WORKER_ID": f"embedded-{self.opts.port}" + (f"-{i + 1}" if i else "")}
            launch = partial(self._launch_service, name, "worker", self.worker_port(i), worker_env)
            children.append(Child(name, launch, layer=1, stop_timeout=40.0))
        self.supervisor.add(*children)

    def _launch_service(self, name: str, service: str, port: int, env: dict[str, str]) -> embedded.Launched:
        log_file = self.opts.data_dir / "logs" / f"{name}.log"
        env = {**env, f"XR_{service.upper()}_HTTP_PORT": str(port)}
        proc = embedded.spawn([sys.executable, "-m", f"xrunner.{service}"], log_file, env=env)
        url = f"http://{self.opts.host}:{port}/readyz"
        return embedded.Launched(proc, partial(embedded.serves, url, proc.pid), name, log_file, SERVICE_START_TIMEOUT)

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

    def stop(self) -> dict[str, float]:
        """Stop the services first (they drain), then Postgres and NATS; nothing started here outlives this.
        Returns when each process had exited, in seconds since the stop began."""
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        return self.supervisor.stop()
