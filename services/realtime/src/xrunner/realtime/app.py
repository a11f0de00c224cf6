"""Wires the realtime edge: its NATS connection and HTTP endpoints (health for now; SSE comes with its issue)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from xrunner.servicekit.http import HttpServer, health_app
from xrunner.servicekit.runtime import Runtime


async def start(runtime: Runtime) -> Callable[[], Awaitable[None]]:
    await runtime.connect_nats()
    server = HttpServer(health_app(runtime.ready), runtime.settings.http_host, runtime.settings.http_port)
    runtime.http_port = await server.start()
    return server.stop
