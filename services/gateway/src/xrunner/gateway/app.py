"""Wires the gateway: `create_app(settings, infra)` builds the HTTP app for production and tests alike, `start()`
connects it and runs the read model's projector, `rebuild()` refolds the read model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files

import asyncpg
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import ExternalDocumentation
from nats.aio.client import Client
from nats.js import JetStreamContext

from xrunner.gateway import dependencies
from xrunner.gateway.asof import Histories
from xrunner.gateway.bodies import JsonRequest
from xrunner.gateway.console import console_handlers
from xrunner.gateway.decisions import Decisions
from xrunner.gateway.jobs import Jobs
from xrunner.gateway.ratelimit import RateLimiter, edge_checks
from xrunner.gateway.readmodel import JobsProjection, JobsTable
from xrunner.gateway.routes import HANDLERS
from xrunner.gateway.settings import GatewaySettings
from xrunner.servicekit import httperrors, version
from xrunner.servicekit.archive import Archive
from xrunner.servicekit.auth import JwtVerifier, verifier_from
from xrunner.servicekit.blobs import open_blobs
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.guards import authorize
from xrunner.servicekit.http import HttpServer, ReadyCheck, health_handlers, traced
from xrunner.servicekit.projector import Projector
from xrunner.servicekit.redrive import redrive_command
from xrunner.servicekit.replay import rebuild_command, snapshot_command
from xrunner.servicekit.runtime import Runtime

MIGRATIONS = files("xrunner.gateway") / "sql"


@dataclass(frozen=True)
class Infra:
    """What the gateway is connected to: `start()` takes it from the service's runtime, tests from their own NATS
    and database. The verifier holds the identity provider's keys (or fetches them)."""

    nc: Client
    js: JetStreamContext
    pool: asyncpg.Pool
    verifier: JwtVerifier
    ready: ReadyCheck


def create_app(settings: GatewaySettings, infra: Infra) -> Litestar:
    """The gateway's HTTP app: routes, one guard, the dependencies handlers ask for, and problem+json errors."""
    decisions = Decisions(infra.js)
    jobs = Jobs(EventStore(infra.js), infra.js, decisions, JobsTable(infra.pool), settings.decision_wait_s)
    blobs = open_blobs(settings)  # the log's archive, for a job as of an event the stream no longer holds
    archive = Archive(blobs) if blobs is not None else None
    return Litestar(
        route_handlers=[*HANDLERS, *health_handlers(infra.ready, settings.metrics_token), *console_handlers(settings)],
        guards=[authorize(infra.verifier)],
        dependencies=dependencies.provide(jobs, infra.js, settings.ticket_secret or settings.jwt_secret,
                                          Histories(infra.nc, infra.js, archive)),
        exception_handlers=httperrors.HANDLERS,
        openapi_config=_openapi(settings.artifacts_url),
        request_max_body_size=settings.max_body_bytes,
        request_class=JsonRequest,
        middleware=[traced],
        before_request=edge_checks(RateLimiter(settings.request_rate_per_s, settings.request_burst)),
        cors_config=_cors(settings.cors_origins) if settings.cors_origins else None,
        plugins=[httperrors.DocumentProblems()],
        on_app_init=[_no_debug],
        on_startup=[decisions.start],
        on_shutdown=[decisions.stop, *([blobs.close] if blobs is not None else [])],
    )


def _openapi(artifacts_url: str) -> OpenAPIConfig:
    """The OpenAPI document's config; it points to the artifacts API, a service of its own."""
    where = f"{artifacts_url.rstrip('/')}/schema" if artifacts_url else "the artifacts service's `/schema`"
    description = (f"Jobs, their logs and events. A job's files (`GET /v1/jobs/{{job_id}}/artifacts`, previews, "
                   f"signed downloads) are served by the artifacts API, documented at {where}; `JobView.artifacts` "
                   "counts them.")
    docs = ExternalDocumentation(url=f"{artifacts_url.rstrip('/')}/schema", description="The artifacts API")
    return OpenAPIConfig(title="xrunner", version=version.VERSION, path="/schema", description=description,
                         external_docs=docs if artifacts_url else None)


def _cors(origins: list[str]) -> CORSConfig:
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "traceparent"],
        expose_headers=["Location", "Retry-After", "X-Next-Offset", "X-Log-Complete", "traceparent"],
    )


def _no_debug(config: AppConfig) -> AppConfig:
    config.debug = False
    return config


def read_model_projector(js: JetStreamContext, pool: asyncpg.Pool, linger_s: float = 0.0) -> Projector:
    """The projector that keeps the `jobs` read model folded."""
    return Projector(js, pool, JobsProjection(), linger_s=linger_s)


async def start(runtime: Runtime) -> Callable[[], Awaitable[None]]:
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    js = await runtime.connect_nats()
    pool = await runtime.connect_postgres(settings.schema, MIGRATIONS)
    runtime.spawn(read_model_projector(js, pool, settings.projection_linger_s).run(), "projector")
    infra = Infra(runtime.nc, js, pool, verifier_from(settings, settings.tenant_claim), runtime.ready)
    server = HttpServer(create_app(settings, infra), settings.http_host, settings.http_port)
    runtime.http_port = await server.start()
    return server.stop


def projection(_: object) -> JobsProjection:
    """The projection `rebuild` and `snapshot` work on."""
    return JobsProjection()


TABLES = [("jobs", "tenant, id")]  # what a rebuild compares, with the key to order rows by
rebuild = rebuild_command("xrunner.gateway", projection, TABLES)
rebuild_from_snapshot = rebuild_command("xrunner.gateway", projection, TABLES, from_snapshot=True)
snapshot = snapshot_command("xrunner.gateway", projection)
redrive = redrive_command("xrunner.gateway", projection)
