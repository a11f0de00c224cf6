"""Wires the scheduler: its projection, the admission consumer, the dispatcher and the heartbeat watch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib.resources import files

from xrunner.scheduler.handlers import Admission, Dispatcher, Workers
from xrunner.scheduler.projection import SchedulerJobs
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.servicekit.http import HttpServer, health_app
from xrunner.servicekit.projector import Projector
from xrunner.servicekit.runtime import Runtime


async def start(runtime: Runtime) -> Callable[[], Awaitable[None]]:
    settings = runtime.settings
    assert isinstance(settings, SchedulerSettings)
    js = await runtime.connect_nats()
    pool = await runtime.connect_postgres(settings.schema, files("xrunner.scheduler") / "sql")
    wake = asyncio.Event()
    workers = Workers(js, wake)
    runtime.spawn(Projector(js, pool, SchedulerJobs(), consumer="scheduler_jobs", on_commit=wake).run(), "projector")
    runtime.spawn(workers.watch(), "workers")
    runtime.spawn(Admission(js, pool, settings.default_pool).run(), "admission")
    dispatcher = Dispatcher(js, pool, workers, wake, settings.dispatch_batch, settings.redispatch_after_s)
    runtime.spawn(dispatcher.run(), "dispatcher")
    server = HttpServer(health_app(runtime.ready), settings.http_host, settings.http_port)
    runtime.http_port = await server.start()
    return server.stop
