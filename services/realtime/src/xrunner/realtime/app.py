"""Wires the realtime edge: its NATS connection, the per-tenant fan-out hub, the SSE endpoints and attach."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State

from xrunner.realtime import attach, routes
from xrunner.realtime.hub import Hub
from xrunner.realtime.routes import Edge
from xrunner.realtime.settings import RealtimeSettings
from xrunner.realtime.tickets import Authenticator
from xrunner.servicekit.auth import verifier_from
from xrunner.servicekit.http import HttpServer, ReadyCheck, health_handlers, traced
from xrunner.servicekit.runtime import Runtime


def create_http_app(edge: Edge, terminals: attach.Terminals, ready: ReadyCheck, metrics_token: str = "",
                    cors_origins: list[str] | None = None) -> Litestar:
    return Litestar(route_handlers=[routes.events, routes.job_log, attach.attach,
                                    *health_handlers(ready, metrics_token)],
                    state=State({"edge": edge, "terminals": terminals}), openapi_config=None, middleware=[traced],
                    cors_config=_cors(cors_origins) if cors_origins else None)


def _cors(origins: list[str]) -> CORSConfig:
    """A browser app on another origin (the console, served by the gateway) reads the streams with `fetch`."""
    return CORSConfig(allow_origins=list(origins), allow_methods=["GET"],
                      allow_headers=["Authorization", "Last-Event-ID", "Cache-Control", "traceparent"],
                      expose_headers=["Retry-After", "X-Next-Offset", "X-Log-Complete", "traceparent"])


async def start(runtime: Runtime) -> Callable[[], Awaitable[None]]:
    settings = runtime.settings
    assert isinstance(settings, RealtimeSettings)
    js = await runtime.connect_nats()
    verifier = verifier_from(settings, settings.tenant_claim)
    auth = Authenticator(verifier, settings.ticket_secret or settings.jwt_secret, js)
    edge = Edge(js, Hub(js, settings.client_buffer), auth, settings.ping_s, settings.max_connections_per_tenant,
                settings.max_connections_per_subject)
    app = create_http_app(edge, attach.Terminals(runtime.nc), runtime.ready, settings.metrics_token,
                          settings.cors_origins)
    server = HttpServer(app, settings.http_host, settings.http_port)
    runtime.http_port = await server.start()
    return server.stop
