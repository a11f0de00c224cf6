"""The real gateway app for tests: connected to the test's NATS and database in the test's event loop, and served
over real HTTP with uvicorn as production serves it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import asyncpg
import httpx
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext

from xrunner.gateway.app import create_http_app
from xrunner.gateway.jobs import Jobs
from xrunner.gateway.readmodel import JobsProjection
from xrunner.servicekit import db, streams
from xrunner.servicekit.auth import JwtVerifier
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.http import HttpServer
from xrunner.servicekit.projector import Projector

SCHEMA = "gateway"


@dataclass
class GatewayInfra:
    nc: Nats
    js: JetStreamContext
    store: EventStore
    pool: asyncpg.Pool
    jobs: Jobs


@contextlib.asynccontextmanager
async def gateway_infra(nats_url: str, database_url: str, name: str, project: bool = True,
                        decision_wait_s: float = 0.05) -> AsyncIterator[GatewayInfra]:
    """Streams declared, the gateway schema migrated, and (with `project`) its read model folding."""
    nc: Nats = await streams.connect(nats_url, name)
    js = nc.jetstream()
    await streams.declare(js)
    pool = await db.create_pool(database_url, SCHEMA)
    async with pool.acquire() as conn:
        await db.migrate(conn, SCHEMA, db.migration_files(files("xrunner.gateway") / "sql"))
    projector = asyncio.create_task(Projector(js, pool, JobsProjection()).run()) \
        if project else None
    store = EventStore(js)
    try:
        yield GatewayInfra(nc, js, store, pool, Jobs(store, js, nc, pool, decision_wait_s))
    finally:
        if projector is not None:
            projector.cancel()
            await asyncio.gather(projector, return_exceptions=True)
        await pool.close()
        await nc.close()


@contextlib.asynccontextmanager
async def serve(infra: GatewayInfra, verifier: JwtVerifier, max_body: int = 1_048_576,
                **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Serve `create_http_app(...)` on a free port and yield a client for it."""

    async def ready() -> dict[str, bool]:
        return {"nats": infra.nc.is_connected}

    server = HttpServer(create_http_app(infra.jobs, verifier, ready, max_body, **options), "127.0.0.1", 0)
    port = await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as http:
            yield http
    finally:
        await server.stop()
