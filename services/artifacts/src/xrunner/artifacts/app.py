"""Wires the artifact service: `create_app(settings, infra)` builds its HTTP API for production and tests alike,
`start()` connects it and runs the index projector, the preview consumer and the retention sweeper, `rebuild()`
refolds the index."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files

import asyncpg
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from nats.js import JetStreamContext

from xrunner.artifacts import dependencies
from xrunner.artifacts.blobs import BLOB_HANDLERS
from xrunner.artifacts.catalog import Catalog
from xrunner.artifacts.index import ArtifactIndex
from xrunner.artifacts.isolation import Isolated, Limits
from xrunner.artifacts.objects import ObjectStore, open_store
from xrunner.artifacts.previewer import Previewer
from xrunner.artifacts.retention import Sweeper
from xrunner.artifacts.routes import ArtifactRoutes
from xrunner.artifacts.settings import ArtifactsSettings
from xrunner.artifacts.signer import Signer
from xrunner.artifacts.signing import Keyring
from xrunner.servicekit import httperrors, version
from xrunner.servicekit.archive import Archive, Archiver
from xrunner.servicekit.auth import JwtVerifier, verifier_from
from xrunner.servicekit.blobs import open_blobs
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.guards import authorize
from xrunner.servicekit.http import HttpServer, ReadyCheck, health_handlers
from xrunner.servicekit.projector import Projector
from xrunner.servicekit.replay import rebuild_command, snapshot_command
from xrunner.servicekit.runtime import Runtime

MIGRATIONS = files("xrunner.artifacts") / "sql"


@dataclass(frozen=True)
class Infra:
    """What the service is connected to: `start()` takes it from the runtime, tests from their own NATS, database
    and object store. `base_url` is where clients reach this service (the local store's URLs point there)."""

    js: JetStreamContext
    pool: asyncpg.Pool
    store: ObjectStore
    verifier: JwtVerifier
    ready: ReadyCheck
    base_url: str


def keyring(settings: ArtifactsSettings) -> Keyring:
    """The configured signing keys, else one derived from the JWT secret; with neither the service does not start."""
    if settings.signing_keys:
        return Keyring.parse(settings.signing_keys)
    if settings.jwt_secret:
        return Keyring.derived(settings.jwt_secret)
    raise ValueError("set XR_ARTIFACTS_SIGNING_KEYS (`kid:secret,...`): there is no JWT secret to derive one from")


def create_app(settings: ArtifactsSettings, infra: Infra) -> Litestar:
    """The artifacts API: routes, the gateway's guard, its dependencies, and problem+json errors."""
    signer = Signer(keyring(settings), infra.store, settings.artifact_store, infra.base_url.rstrip("/"),
                    settings.url_ttl_s)
    return Litestar(
        route_handlers=[ArtifactRoutes, *BLOB_HANDLERS, *health_handlers(infra.ready, settings.metrics_token)],
        guards=[authorize(infra.verifier)],
        dependencies=dependencies.provide(Catalog(infra.pool), signer, infra.js),
        exception_handlers=httperrors.HANDLERS,
        openapi_config=OpenAPIConfig(title="xrunner artifacts", version=version.VERSION, path="/schema",
                                     description="A job's files: lists, metadata, previews and signed downloads."),
        cors_config=_cors(settings.cors_origins) if settings.cors_origins else None,
        plugins=[httperrors.DocumentProblems()],
        on_app_init=[_no_debug],
    )


def _cors(origins: list[str]) -> CORSConfig:
    return CORSConfig(allow_origins=list(origins), allow_methods=["GET"],
                      allow_headers=["Authorization", "Range", "If-None-Match"],
                      expose_headers=["Content-Range", "Content-Length", "ETag", "Content-Disposition"])


def _no_debug(config: AppConfig) -> AppConfig:
    config.debug = False
    return config


async def start(runtime: Runtime) -> Callable[[], Awaitable[None]]:
    settings = runtime.settings
    assert isinstance(settings, ArtifactsSettings)
    js = await runtime.connect_nats()
    pool = await runtime.connect_postgres(settings.schema, MIGRATIONS)
    store = open_store(settings)
    runtime.spawn(Projector(js, pool, ArtifactIndex(), linger_s=settings.projection_linger_s).run(), "projector")
    sweeper = Sweeper(Catalog(pool), store, EventStore(js), settings.sweep_interval_s, settings.sweep_batch)
    runtime.spawn(sweeper.run(), "retention")
    archive = open_blobs(settings)  # the log's archive: written here, read by every reader of old events
    if archive is not None:
        runtime.spawn(Archiver(js, Archive(archive), settings).run(), "archiver")
    isolated = Isolated(Limits(settings.preview_timeout_s, settings.preview_cpu_s, settings.preview_memory_bytes))
    if settings.previews:
        previewer = Previewer(js, pool, store, isolated, max_bytes=settings.preview_max_bytes)
        runtime.spawn(previewer.run(), "previews")
    base_url = settings.public_url or f"http://{settings.http_host}:{settings.http_port}"
    infra = Infra(js, pool, store, verifier_from(settings, settings.tenant_claim), runtime.ready, base_url)
    server = HttpServer(create_app(settings, infra), settings.http_host, settings.http_port)
    runtime.http_port = await server.start()

    async def stop() -> None:
        await server.stop()
        await isolated.close()
        await store.close()
        if archive is not None:
            await archive.close()

    return stop


def projection(_: object) -> ArtifactIndex:
    """The projection `rebuild` and `snapshot` work on."""
    return ArtifactIndex()


TABLES = [("artifacts", "id"), ("tenants", "tenant")]  # what a rebuild compares, with the key to order rows by
rebuild = rebuild_command("xrunner.artifacts", projection, TABLES)
rebuild_from_snapshot = rebuild_command("xrunner.artifacts", projection, TABLES, from_snapshot=True)
snapshot = snapshot_command("xrunner.artifacts", projection)
