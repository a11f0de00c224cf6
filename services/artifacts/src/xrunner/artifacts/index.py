"""The artifact index: one row per stored artifact, marked when retention expires it, and each tenant's artifact TTL."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from xrunner.contracts import subjects
from xrunner.contracts.events import ArtifactExpired, ArtifactStored, Event, TenantConfigured
from xrunner.servicekit.sql import load_queries

QUERIES = load_queries("xrunner.artifacts")


class ArtifactIndex:
    name = "artifacts.index"
    filter_subjects = (
        subjects.job_events(token="artifact_stored"),
        subjects.job_events(token="artifact_expired"),
        subjects.tenant_events(token="configured"),
    )

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]]) -> None:
        for _, event in batch:
            if isinstance(event, ArtifactStored):
                await conn.execute(
                    "INSERT INTO artifacts (id, tenant, job_id, attempt, name, key, size, sha256, content_type,"
                    " stored_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
                    event.artifact_id,
                    event.tenant,
                    event.job_id,
                    event.attempt,
                    event.name,
                    event.key,
                    event.size,
                    event.sha256,
                    event.content_type,
                    event.occurred_at,
                )
            elif isinstance(event, ArtifactExpired):
                await conn.execute(
                    "UPDATE artifacts SET expired_at = $2 WHERE id = $1 AND tenant = $3",
                    event.artifact_id,
                    event.occurred_at,
                    event.tenant,
                )
            elif isinstance(event, TenantConfigured):
                await conn.execute(QUERIES["configure_tenant"], event.tenant, event.artifact_ttl_s)
