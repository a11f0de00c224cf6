"""The faults a chaos round injects and heals: each is what an unlucky operator sees (a process killed or frozen, a
server restarted, connections cut), applied to a running cluster of separate processes."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import asyncpg
from chaos.infra import Nats, Postgres
from integration.cluster import Cluster
from support import worker_id

LEASE_S = 3.0  # the scheduler's worker lease in chaos clusters
TICKS = 4  # a job runs ~TICKS * 0.2 s, so a fault finds jobs running
WORKERS = 2
SLOTS = 4


@dataclass
class ChaosCluster:
    """Gateway, scheduler and two workers as OS processes on a nats-server and a Postgres that faults may hit."""

    nats: Nats
    pg: Postgres
    database_url: str
    logs: Path
    services: Cluster = field(init=False)
    settings: dict[str, tuple[str, dict[str, object]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.services = Cluster(self.nats.url, self.database_url, self.logs)

    def start(self, name: str, service: str, **settings: object) -> None:
        self.settings[name] = (service, settings)
        self.services.start(name, service, wait=False, **settings)

    def restart(self, name: str) -> None:
        """Start `name` again with the settings it first had (a worker keeps its id), and wait until it is ready."""
        service, settings = self.settings[name]
        self.services.start(name, service, **settings)

    def up(self) -> None:
        # one identity, kept across a restart (as a pod's name or the embedded stack's): it takes its lease over
        self.start("scheduler", "scheduler", tick_s=0.1, worker_lease_s=LEASE_S, scheduler_id="chaos-scheduler")
        self.start("gateway", "gateway")
        for i in range(WORKERS):
            # ids and workspaces of this run: workers of one id share job cgroups and the reaper's files
            self.start(f"worker{i}", "worker", slots=SLOTS, worker_id=worker_id(f"w{i}"), sandbox="none",
                       kill_grace_s=1, workspace_dir=self.logs / f"workspaces-{i}")
        for name in self.settings:
            self.services.wait_ready(name)

    def stop(self) -> None:
        self.services.stop()


class Nemesis(Protocol):
    """A fault: `inject` breaks something, `heal` (called `hold_s` later) puts it back as an operator would. Jobs
    under it run for `ticks` x 0.2 s."""

    name: str
    hold_s: float
    ticks: int

    def inject(self, cluster: ChaosCluster) -> None: ...

    def heal(self, cluster: ChaosCluster) -> None: ...


@dataclass
class KillService:
    """SIGKILL a service process (no drain, no goodbye), then start it again under the same identity."""

    name: str
    target: str
    hold_s: float = 1.0
    ticks: int = TICKS

    def inject(self, cluster: ChaosCluster) -> None:
        cluster.services.kill(self.target, signal.SIGKILL)

    def heal(self, cluster: ChaosCluster) -> None:
        cluster.restart(self.target)


@dataclass
class PauseWorker:
    """SIGSTOP a worker for longer than its lease, then SIGCONT it: the scheduler declares the worker lost and runs
    its jobs elsewhere. What a long GC pause, a frozen VM or a swapped-out host looks like. Its jobs outlive the
    pause, so without self-fencing (the reaper kills them first) a job dispatched again while its first execution
    still runs shows up as an overlap."""

    name: str = "worker_pause"
    target: str = "worker0"
    hold_s: float = 2 * LEASE_S
    ticks: int = 35  # 7 s: longer than the pause (6 s), and still running when the job is dispatched again

    def inject(self, cluster: ChaosCluster) -> None:
        cluster.services.procs[self.target].send_signal(signal.SIGSTOP)

    def heal(self, cluster: ChaosCluster) -> None:
        cluster.services.procs[self.target].send_signal(signal.SIGCONT)


@dataclass
class KillNats:
    """SIGKILL nats-server, then start it again on the same port and store directory."""

    name: str = "nats_kill"
    hold_s: float = 1.0
    ticks: int = TICKS

    def inject(self, cluster: ChaosCluster) -> None:
        cluster.nats.kill()

    def heal(self, cluster: ChaosCluster) -> None:
        cluster.nats.start()


@dataclass
class RestartPostgres:
    """Stop Postgres (fast shutdown: every connection cut, transactions aborted) and start it on the same data
    directory and port."""

    name: str = "postgres_restart"
    hold_s: float = 1.0
    ticks: int = TICKS

    def inject(self, cluster: ChaosCluster) -> None:
        cluster.pg.stop()

    def heal(self, cluster: ChaosCluster) -> None:
        cluster.pg.start()


@dataclass
class TerminateConnections:
    """`pg_terminate_backend` every other connection to the test's database, `times` times `every_s` apart (pools
    are hit again while they reconnect): what a failover proxy or an operator's kill does to the services."""

    name: str = "pg_terminate"
    hold_s: float = 0.0  # the fault is the cuts themselves
    ticks: int = TICKS
    times: int = 3
    every_s: float = 0.7

    def inject(self, cluster: ChaosCluster) -> None:
        for i in range(self.times):
            if i:
                time.sleep(self.every_s)
            asyncio.run(_terminate_others(cluster.database_url))

    def heal(self, cluster: ChaosCluster) -> None:
        """Nothing to put back: the server never went away."""


async def _terminate_others(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    finally:
        await conn.close()


NEMESES: dict[str, Nemesis] = {
    "worker_kill": KillService("worker_kill", "worker0"),
    "worker_pause": PauseWorker(),
    "scheduler_kill": KillService("scheduler_kill", "scheduler"),
    "nats_kill": KillNats(),
    "postgres_restart": RestartPostgres(),
    "pg_terminate": TerminateConnections(),
}
