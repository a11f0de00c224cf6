"""The whole embedded stack, started by `xrunner up` as separate OS processes, shared by the e2e tests."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from xrunner.servicekit.auth import SCOPES, mint

SERVICES = ("gateway", "realtime", "artifacts", "scheduler", "worker")
OFFSETS = (0, 1, 2, 3, 4, 22, 32)  # the services, then NATS and Postgres (see xrunner.cli.stack)


@dataclass
class Stack:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    api: str

    def token(self, tenant: str = "acme", scopes: tuple[str, ...] = SCOPES, ttl_s: int = 600) -> str:
        secret = (self.data_dir / "secret").read_text().strip()
        return mint(
            secret,
            tenant=tenant,
            subject=f"{tenant}-tester",
            scopes=list(scopes),
            issuer="xrunner",
            audience="xrunner",
            ttl_s=ttl_s,
            now=int(time.time()),
        )

    def client(self, tenant: str = "acme") -> httpx.Client:
        return httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {self.token(tenant)}"}, timeout=30)


def free_base() -> int:
    """A base port whose service, NATS and Postgres ports are all free."""
    for _ in range(200):
        base = random.randrange(20_000, 32_000)  # below the ephemeral range, which outgoing connections use
        if all(_free(base + off) for off in OFFSETS):
            return base
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start_stack(data_dir: Path, port: int) -> Stack:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "xrunner.cli", "up", "--data-dir", str(data_dir), "--port", str(port), "--slots", "16"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    stack = Stack(proc, data_dir, port, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 120
    while not (data_dir / "env").exists() or not _ready(stack):
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read().decode() if proc.stdout and proc.poll() is not None else ""
            stop_stack(stack)
            raise RuntimeError(f"xrunner up did not come up: {out}")
        time.sleep(0.2)
    return stack


def _ready(stack: Stack) -> bool:
    try:
        return httpx.get(f"{stack.api}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def stop_stack(stack: Stack, timeout: float = 60) -> int:
    if stack.proc.poll() is None:
        stack.proc.send_signal(signal.SIGINT)
    return stack.proc.wait(timeout)


def processes_under(data_dir: Path) -> list[str]:
    """Command lines of live processes that belong to the stack in `data_dir` (its NATS, Postgres, services)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if str(data_dir) in cmdline or str(data_dir).encode() in environ:
            found.append(f"{pid}: {cmdline}")
    return found


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("stack") / ".xrunner"
    running = start_stack(data_dir, free_base())
    try:
        yield running
    finally:
        stop_stack(running)
