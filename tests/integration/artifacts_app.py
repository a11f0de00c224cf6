"""The real artifacts app for tests: `create_app` as production builds it, its index projector folding the test's
NATS into the test's database (and, when asked, its previewer deriving previews), served over real HTTP; events are
appended to the log as the worker would."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from nats.js import JetStreamContext

from xrunner.artifacts.app import MIGRATIONS, Infra, create_app
from xrunner.artifacts.index import ArtifactIndex
from xrunner.artifacts.isolation import Isolated, Limits
from xrunner.artifacts.objects import ObjectStore
from xrunner.artifacts.previewer import Previewer
from xrunner.artifacts.settings import ArtifactsSettings
from xrunner.cli import embedded
from xrunner.contracts.events import ArtifactStored, JobSubmitted
from xrunner.contracts.spec import JobSpec, ProcessWorkload
from xrunner.servicekit import db, streams
from xrunner.servicekit.auth import JwtVerifier, mint
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.http import HttpServer
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.projector import Projector

SECRET = "an-artifacts-test-secret-of-32-bytes"
KEYS = "k2:second-signing-key-0123456789,k1:first-signing-key-0123456789"


@dataclass
class ArtifactsService:
    js: JetStreamContext
    pool: asyncpg.Pool
    events: EventStore
    store: ObjectStore
    base_url: str
    settings: ArtifactsSettings

    def client(self, tenant: str, scopes: tuple[str, ...] = ("jobs:read",)) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers=bearer(tenant, scopes), timeout=10)

    async def submit(self, tenant: str) -> str:
        return await submit(self.events, tenant)

    async def store_artifact(self, tenant: str, job_id: str, name: str, data: bytes, content_type: str,
                             attempt: int = 1, age_s: float = 0.0) -> ArtifactStored:
        """Put `data` in the store and announce it as the worker does, `age_s` seconds ago."""
        key = f"tenants/{tenant}/jobs/{job_id}/{attempt}/{name}"
        await self.store.put(key, data, content_type)
        event = ArtifactStored(event_id=new_id(), occurred_at=datetime.now(UTC) - timedelta(seconds=age_s),
                               tenant=tenant, job_id=job_id, attempt=attempt, artifact_id=new_id(), name=name, key=key,
                               size=len(data), sha256=hashlib.sha256(data).hexdigest(), content_type=content_type)
        await self.events.append(event, msg_id=event.event_id)
        return event

    async def indexed(self, artifact_id: str) -> bool:
        return bool(await self.pool.fetchval("SELECT count(*) FROM artifacts WHERE id = $1", artifact_id))

    async def previewed(self, artifact_id: str) -> bool:
        """The artifact's `artifact.previewed` is folded into the index."""
        return bool(await self.pool.fetchval("SELECT preview IS NOT NULL FROM artifacts WHERE id = $1", artifact_id))


async def submit(events: EventStore, tenant: str) -> str:
    """A new job's `job.submitted`, as the gateway appends it; returns the job's id."""
    job_id = new_id().lower()
    event = JobSubmitted(event_id=new_id(), occurred_at=datetime.now(UTC), tenant=tenant, job_id=job_id,
                         spec=JobSpec(workload=ProcessWorkload(argv=["true"])))
    await events.append(event, msg_id=f"submit:{job_id}")
    return job_id


def bearer(tenant: str, scopes: tuple[str, ...] = ("jobs:read",)) -> dict[str, str]:
    token = mint(SECRET, tenant=tenant, subject=f"{tenant}-tester", scopes=list(scopes), issuer="xrunner",
                 audience="xrunner", ttl_s=900, now=int(time.time()))
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def artifacts_service(nats_url: str, database_url: str, store: ObjectStore, previews: bool = False,
                            **settings: Any) -> AsyncIterator[ArtifactsService]:
    """Streams declared, the schema migrated, the index folding (and with `previews` the previewer deriving) and the
    API served on a free port."""
    nc = await streams.connect(nats_url, "test-artifacts")
    js = nc.jetstream()
    await streams.declare(js)
    pool = await db.create_pool(database_url, "artifacts")
    async with pool.acquire() as conn:
        await db.migrate(conn, "artifacts", db.migration_files(MIGRATIONS))
    isolated = Isolated(Limits())
    tasks = [asyncio.create_task(Projector(js, pool, ArtifactIndex()).run())]
    if previews:
        tasks.append(asyncio.create_task(Previewer(js, pool, store, isolated, max_bytes=1 << 26).run()))
    port = embedded.free_port()
    base_url = f"http://127.0.0.1:{port}"
    options = ArtifactsSettings(jwt_secret=SECRET, signing_keys=KEYS, **settings)

    async def ready() -> dict[str, bool]:
        return {"nats": nc.is_connected}

    app = create_app(options, Infra(js, pool, store, JwtVerifier(SECRET, issuer="xrunner", audience="xrunner"),
                                    ready, base_url))
    server = HttpServer(app, "127.0.0.1", port)
    await server.start()
    try:
        yield ArtifactsService(js, pool, EventStore(js), store, base_url, options)
    finally:
        await server.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await isolated.close()
        await store.close()
        await pool.close()
        await nc.close()
