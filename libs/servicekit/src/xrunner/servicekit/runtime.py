"""One service process: its NATS and Postgres connections, its background tasks, and its shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from importlib.resources.abc import Traversable
from typing import Any, NoReturn, TypeVar

import asyncpg
import nats.errors
import structlog
import uvloop
from nats.aio.client import Client
from nats.js import JetStreamContext

from xrunner.servicekit import db, streams
from xrunner.servicekit.logs import configure_logging
from xrunner.servicekit.settings import CommonSettings, load_settings

log = structlog.get_logger()

S = TypeVar("S", bound=CommonSettings)
Start = Callable[["Runtime"], Awaitable[Callable[[], Awaitable[None]]]]


class Runtime:
    """Holds what a service connected to; a background task that dies takes the service down (exit 1),
    so that its supervisor restarts it rather than leaving it half alive."""

    def __init__(self, service: str, settings: CommonSettings) -> None:
        self.service, self.settings = service, settings
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._pool: asyncpg.Pool | None = None
        self._redeclaring: asyncio.Task[None] | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.stopping = asyncio.Event()
        self.failed = False
        self.http_port = 0

    @property
    def nc(self) -> Client:
        assert self._nc is not None, "connect_nats() first"
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "connect_nats() first"
        return self._js

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "connect_postgres() first"
        return self._pool

    async def connect_nats(self) -> JetStreamContext:
        self._nc = await streams.connect(self.settings.nats_url, f"xrunner-{self.service}", self._on_reconnect)
        self._js = self._nc.jetstream(timeout=10.0)
        await streams.declare(self._js, self.settings.events_max_age_s, self.settings.logs_max_age_s,
                              self.settings.stream_replicas)
        return self._js

    def _on_reconnect(self) -> None:
        """A restarted nats-server keeps its file-backed streams but not the memory-backed buckets (heartbeats,
        stats): declare everything again, in the background, so that the service carries on without a restart."""
        if self._redeclaring is None or self._redeclaring.done():
            self._redeclaring = asyncio.create_task(self._redeclare(), name="redeclare")

    async def _redeclare(self) -> None:
        for attempt in itertools.count():
            try:
                await streams.declare(self.js, self.settings.events_max_age_s, self.settings.logs_max_age_s,
                                      self.settings.stream_replicas)
                log.info("streams and buckets declared after a reconnect")
                return
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("declaring streams after a reconnect failed; retrying", error=repr(exc))
                await asyncio.sleep(min(5.0, 0.1 * 2**attempt))

    async def connect_postgres(self, schema: str, migrations: Traversable, max_size: int = 10) -> asyncpg.Pool:
        """Connect (retrying while Postgres comes up), then apply the schema's migrations."""
        for attempt in range(60):
            try:
                self._pool = await db.create_pool(self.settings.database_url, schema, max_size=max_size)
                break
            except (OSError, asyncpg.CannotConnectNowError) as exc:
                if attempt == 59:
                    raise
                log.info("waiting for postgres", error=str(exc))
                await asyncio.sleep(0.5)
        async with self.pool.acquire() as conn:
            applied = await db.migrate(conn, schema, db.migration_files(migrations))
        if applied:
            log.info("migrations applied", schema=schema, versions=applied)
        return self.pool

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._on_done)
        self.tasks.append(task)
        return task

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self.stopping.is_set():
            return
        exc = task.exception()
        log.error("background task ended", task=task.get_name(), error=repr(exc))
        self.failed = True
        self.stopping.set()

    async def ready(self) -> dict[str, bool]:
        checks = {"nats": self._nc is not None and self._nc.is_connected}
        if self._pool is not None:
            try:
                async with asyncio.timeout(2):
                    await self._pool.fetchval("SELECT 1")
                checks["postgres"] = True
            except (OSError, asyncpg.PostgresError, TimeoutError):
                checks["postgres"] = False
        return checks

    async def close(self) -> None:
        tasks = [*self.tasks, *([self._redeclaring] if self._redeclaring else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                if self._nc.is_connected:
                    await asyncio.wait_for(self._nc.drain(), 5.0)
            with contextlib.suppress(Exception):
                await self._nc.close()
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 5.0)
            except TimeoutError:
                self._pool.terminate()


def run_service(runtime: Runtime, main: Start, fast_loop: bool = True) -> int:
    """Run `main` (which starts the service and returns its stop function) until SIGINT/SIGTERM."""

    async def _run() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runtime.stopping.set)
        stop = await main(runtime)
        log.info("service started", service=runtime.service)
        await runtime.stopping.wait()
        log.info("service stopping", service=runtime.service)
        await stop()
        await runtime.close()
        return 1 if runtime.failed else 0

    return uvloop.run(_run()) if fast_loop else asyncio.run(_run())


Command = Callable[["Runtime"], Awaitable[int]]


def main(
    service: str,
    settings_cls: type[S],
    start: Start,
    commands: dict[str, Command] | None = None,
    fast_loop: bool = True,
) -> NoReturn:
    """The body of every `python -m xrunner.<service> [command]`: settings from the environment, logging, then
    either run the service or a one-off command (e.g. `rebuild`) that returns an exit code. Services run on uvloop
    (`fast_loop`), except those that spawn many processes: asyncio's own loop spawns with vfork, uvloop forks."""
    settings = load_settings(settings_cls, service, os.environ)
    configure_logging(service, settings.log_level, settings.log_format)
    runtime = Runtime(service, settings)
    args = sys.argv[1:]
    if not args:
        sys.exit(run_service(runtime, start, fast_loop))
    command = (commands or {}).get(args[0])
    if command is None or len(args) > 1:
        sys.exit(f"usage: python -m xrunner.{service} [{' | '.join(commands or {})}]")
    sys.exit(uvloop.run(_once(runtime, command)))


async def _once(runtime: Runtime, command: Command) -> int:
    try:
        return await command(runtime)
    finally:
        await runtime.close()
