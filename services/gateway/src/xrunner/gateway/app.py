"""Wires the gateway: connections, the read model's projector, and the HTTP app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from importlib.resources import files

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from xrunner.gateway import problems
from xrunner.gateway.collection import CollectionRoutes
from xrunner.gateway.insight import InsightRoutes
from xrunner.gateway.jobs import Jobs
from xrunner.gateway.ratelimit import RateLimiter, edge_checks
from xrunner.gateway.readmodel import JobsProjection
from xrunner.gateway.routes import JobRoutes
from xrunner.gateway.settings import GatewaySettings
from xrunner.gateway.streamtickets import stream_ticket
from xrunner.gateway.tenants import TenantRoutes
from xrunner.servicekit.auth import JwtVerifier, verifier_from
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.http import HttpServer, ReadyCheck, health_handlers
from xrunner.servicekit.projector import Projector
from xrunner.servicekit.replay import rebuild_command
from xrunner.servicekit.runtime import Runtime


def create_http_app(
    jobs: Jobs,
    verifier: JwtVerifier,
    ready: ReadyCheck,
    max_body_bytes: int,
    *,
    limiter: RateLimiter | None = None,
    cors_origins: Sequence[str] = (),
    ticket_secret: str = "",
) -> Litestar:
    """The gateway's HTTP app; without `limiter` requests are not rate limited, without `cors_origins` no CORS."""
    cors = CORSConfig(
        allow_origins=list(cors_origins),
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
        expose_headers=["Location", "Retry-After", "X-Next-Offset", "X-Log-Complete"],
    )
    return Litestar(
        route_handlers=[CollectionRoutes, JobRoutes, InsightRoutes, TenantRoutes, stream_ticket,
                        *health_handlers(ready)],
        state=State({"jobs": jobs, "verifier": verifier, "ticket_secret": ticket_secret}),
        exception_handlers=problems.HANDLERS,
        openapi_config=OpenAPIConfig(title="xrunner", version="1.0.0", path="/schema"),
        request_max_body_size=max_body_bytes,
        before_request=edge_checks(limiter),
        cors_config=cors if cors_origins else None,
        plugins=[problems.DocumentProblems()],
        on_app_init=[_no_debug],
    )


def _no_debug(config: AppConfig) -> AppConfig:
    config.debug = False
    return config


async def start(runtime: Runtime) -> Callable[[], Awaitable[None]]:
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    js = await runtime.connect_nats()
    pool = await runtime.connect_postgres(settings.schema, files("xrunner.gateway") / "sql")
    projector = Projector(js, pool, JobsProjection(), consumer="gateway_jobs")
    runtime.spawn(projector.run(), "projector")
    jobs = Jobs(EventStore(js), js, runtime.nc, pool, settings.decision_wait_s)
    verifier = verifier_from(settings, settings.tenant_claim)
    server = HttpServer(
        create_http_app(
            jobs,
            verifier,
            runtime.ready,
            settings.max_body_bytes,
            limiter=RateLimiter(settings.request_rate_per_s, settings.request_burst),
            cors_origins=settings.cors_origins,
            ticket_secret=settings.ticket_secret or settings.jwt_secret,
        ),
        settings.http_host,
        settings.http_port,
    )
    runtime.http_port = await server.start()
    return server.stop


rebuild = rebuild_command("xrunner.gateway", lambda _: JobsProjection(), [("jobs", "tenant, id")])
