"""What tests share: polling with a deadline (how they wait for observable state instead of sleeping), worker
ids of their own, the session's nats-server and Postgres handles, and a JetStream with xrunner's streams."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import NamedTuple, TypeVar

from nats.js import JetStreamContext

from xrunner.cli import embedded
from xrunner.servicekit import streams

T = TypeVar("T")


def worker_id(name: str) -> str:
    """A worker id of this test run: a worker reaps what a previous worker of its id left (its cgroups, processes
    and containers), so two test runs overlapping on one machine must never share one."""
    return f"{name}-{os.getpid()}"


W0, W1 = worker_id("w0"), worker_id("w1")


async def wait_until(
    fn: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    timeout: float = 10.0,
    what: str = "",
    interval: float = 0.02,
) -> T:
    """Call `fn` (sync or async) until it returns something truthy, and return that; fail the test on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = fn()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or fn!r}; last value: {result!r}")
        await asyncio.sleep(interval)


def with_marker(marker: str) -> list[int]:
    """Host pids whose argv mentions `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class PgServer(NamedTuple):
    """Where the session's Postgres cluster listens."""

    host: str
    port: int

    def url(self, db: str = "postgres") -> str:
        """The URL of database `db` on this cluster."""
        return embedded.database_url(self.host, self.port, db)


@contextlib.contextmanager
def nats_server(base: Path) -> Iterator[str]:
    """A nats-server with JetStream on a free port, its store under `base`; yields its URL."""
    port = embedded.free_port()
    proc = embedded.start_nats(base / "store", port, log_file=base / "nats.log")
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        embedded.stop(proc)


@contextlib.asynccontextmanager
async def declared_js(url: str) -> AsyncIterator[JetStreamContext]:
    """A JetStream context on the nats-server at `url` with xrunner's streams declared; closed after."""
    nc = await streams.connect(url, "test")
    context = nc.jetstream()
    await streams.declare(context)
    try:
        yield context
    finally:
        await nc.close()
