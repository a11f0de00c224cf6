"""Wires the scheduler: it waits for the lease, then loads its state, folds the log and decides until it stops."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from importlib.resources import files

import asyncpg
import structlog
from nats.js import JetStreamContext
from prometheus_client import Gauge

from xrunner.contracts import subjects
from xrunner.contracts.stats import TenantLimits
from xrunner.scheduler.deadletters import DeadLetters
from xrunner.scheduler.leader import Lease
from xrunner.scheduler.loop import Scheduler
from xrunner.scheduler.projection import SchedulerProjection, load_state
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.scheduler.workers import Workers
from xrunner.servicekit.http import HttpServer, health_app
from xrunner.servicekit.live import LiveFeed
from xrunner.servicekit.projector import Projector, position
from xrunner.servicekit.replay import rebuild_command, snapshot_command
from xrunner.servicekit.runtime import Runtime

log = structlog.get_logger()
ACTIVE = Gauge("xrunner_scheduler_active", "1 while this scheduler holds the lease")


def defaults(settings: SchedulerSettings) -> TenantLimits:
    return TenantLimits(
        weight=settings.default_weight,
        max_inflight=settings.default_max_inflight,
        max_queued=settings.default_max_queued,
        submit_rate_per_s=settings.default_submit_rate_per_s,
    )


async def lead(
    js: JetStreamContext,
    pool: asyncpg.Pool,
    settings: SchedulerSettings,
    scheduler_id: str,
    workers: Workers,
    wake: asyncio.Event,
    lease: Lease,
) -> None:
    """Standby until the lease is ours; then act until it is lost (LeaseLost ends the process)."""
    await lease.acquire()
    ACTIVE.set(1)
    log.info("this scheduler is now active", scheduler_id=scheduler_id)
    async with pool.acquire() as conn:  # the working state; the projection loads its own copy
        state = await load_state(conn, defaults(settings))
        basis = await position(conn, SchedulerProjection.name)
    scheduler = Scheduler(js, state, workers, settings, scheduler_id, wake)
    scheduler.basis = basis
    scheduler.dirty.update(state.jobs)
    projection = SchedulerProjection(state.defaults, scheduler)
    projector = Projector(js, pool, projection, linger_s=settings.projection_linger_s)
    feed = LiveFeed(js, [subjects.job_events(token="submitted"), subjects.tenant_events()], scheduler.stored)
    await feed.start()  # submissions straight from the stream: admission need not wait for the projection
    try:
        await asyncio.gather(projector.run(), scheduler.run(), DeadLetters(js, pool, state, wake).run(), lease.hold())
    finally:
        await feed.stop()


async def start(runtime: Runtime) -> Callable[[], Awaitable[None]]:
    settings = runtime.settings
    assert isinstance(settings, SchedulerSettings)
    settings.check_lease()
    js = await runtime.connect_nats()
    pool = await runtime.connect_postgres(settings.schema, files("xrunner.scheduler") / "sql")
    scheduler_id = settings.scheduler_id or f"{socket.gethostname()}-{os.getpid()}"
    wake = asyncio.Event()
    workers = Workers(js, wake, settings.lost_after_s)
    lease = Lease(js, scheduler_id)
    runtime.spawn(workers.watch(), "workers")
    runtime.spawn(lead(js, pool, settings, scheduler_id, workers, wake, lease), "leader")
    server = HttpServer(health_app(runtime.ready, settings.metrics_token), settings.http_host, settings.http_port)
    runtime.http_port = await server.start()

    async def stop() -> None:
        await server.stop()
        await lease.release()

    return stop


def projection(settings: SchedulerSettings) -> SchedulerProjection:
    """The projection `rebuild` and `snapshot` work on."""
    return SchedulerProjection(defaults(settings))


TABLES = [("jobs", "tenant, id"), ("tenants", "tenant")]  # what a rebuild compares, with the key to order rows by
rebuild = rebuild_command("xrunner.scheduler", projection, TABLES)
rebuild_from_snapshot = rebuild_command("xrunner.scheduler", projection, TABLES, from_snapshot=True)
snapshot = snapshot_command("xrunner.scheduler", projection)
