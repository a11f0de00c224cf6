"""A nats-server and a Postgres cluster that a chaos test owns, so a nemesis may kill and restart them on the same
port and store: what an operator's supervisor would do, and what services must survive."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from xrunner.cli import embedded

HOST = "127.0.0.1"


@dataclass
class Nats:
    store: Path
    port: int = field(default_factory=embedded.free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def start(self) -> None:
        self.proc = embedded.start_nats(self.store / "store", self.port, log_file=self.store / "nats.log")

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye to clients."""
        assert self.proc is not None
        embedded.signal_group(self.proc, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            embedded.stop(self.proc)


@dataclass
class Postgres:
    data: Path
    port: int = field(default_factory=embedded.free_port)
    proc: subprocess.Popen[bytes] | None = None

    def url(self, db: str = "postgres") -> str:
        return embedded.database_url(HOST, self.port, db)

    def start(self) -> None:
        self.proc = embedded.start_postgres(self.data / "data", self.port, host=HOST, log_file=self.data / "pg.log",
                                            fast=True)

    def stop(self) -> None:
        """A fast shutdown (SIGINT): open transactions abort, every client connection is cut."""
        if self.proc is not None and self.proc.poll() is None:
            embedded.stop(self.proc, sig=signal.SIGINT)

    def create_database(self, name: str) -> str:
        embedded.create_database(HOST, self.port, name)
        return self.url(name)
