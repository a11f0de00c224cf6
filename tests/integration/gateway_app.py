"""The real gateway app for tests: `create_app` as production builds it, connected to the test's NATS and database
in the test's event loop, and served over real HTTP with uvicorn as production serves it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext

from xrunner.gateway.app import MIGRATIONS, Infra, create_app, read_model_projector
from xrunner.gateway.settings import GatewaySettings
from xrunner.servicekit import db, streams
from xrunner.servicekit.auth import JwtVerifier
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.http import HttpServer

SCHEMA = "gateway"


@dataclass
class GatewayInfra:
    nc: Nats
    js: JetStreamContext
    store: EventStore
    pool: asyncpg.Pool


@contextlib.asynccontextmanager
async def gateway_infra(nats_url: str, database_url: str, name: str,
                        project: bool = True) -> AsyncIterator[GatewayInfra]:
    """Streams declared, the gateway schema migrated, and (with `project`) its read model folding."""
    nc: Nats = await streams.connect(nats_url, name)
    js = nc.jetstream()
    await streams.declare(js)
    pool = await db.create_pool(database_url, SCHEMA)
    async with pool.acquire() as conn:
        await db.migrate(conn, SCHEMA, db.migration_files(MIGRATIONS))
    projector = asyncio.create_task(read_model_projector(js, pool).run()) if project else None
    try:
        yield GatewayInfra(nc, js, EventStore(js), pool)
    finally:
        if projector is not None:
            projector.cancel()
            await asyncio.gather(projector, return_exceptions=True)
        await pool.close()
        await nc.close()


@contextlib.asynccontextmanager
async def serve(infra: GatewayInfra, verifier: JwtVerifier, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Serve `create_app(GatewaySettings(**settings), ...)` on a free port and yield a client for it. Unless told
    otherwise, requests are not rate limited, bodies are capped at 1 MiB and admission is waited for 50 ms."""

    async def ready() -> dict[str, bool]:
        return {"nats": infra.nc.is_connected}

    options: dict[str, Any] = {"request_rate_per_s": 0.0, "max_body_bytes": 1_048_576, "decision_wait_s": 0.05,
                               **settings}
    app = create_app(GatewaySettings(**options), Infra(infra.nc, infra.js, infra.pool, verifier, ready))
    server = HttpServer(app, "127.0.0.1", 0)
    port = await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as http:
            yield http
    finally:
        await server.stop()
