"""The artifact index: one row per stored artifact, with its preview once derived, marked when retention expires
it; and each tenant's artifact TTL."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import msgspec

from xrunner.contracts import subjects
from xrunner.contracts.events import ArtifactExpired, ArtifactPreviewed, ArtifactStored, Event, TenantConfigured
from xrunner.servicekit.sql import load_queries

QUERIES = load_queries("xrunner.artifacts")
_NOT_PREVIEW = ("type", "event_id", "occurred_at", "tenant", "job_id", "attempt")


def preview_json(event: ArtifactPreviewed) -> str:
    """The `preview` column: the event's fields but its ids and time. Pure."""
    fields = msgspec.to_builtins(event)
    return msgspec.json.encode({k: v for k, v in fields.items() if k not in _NOT_PREVIEW}).decode()


class ArtifactIndex:
    name = "artifacts.index"
    filter_subjects = (
        subjects.job_events(token="artifact_stored"),
        subjects.job_events(token="artifact_expired"),
        subjects.job_events(token="artifact_previewed"),
        subjects.tenant_events(token="configured"),
    )

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]]) -> None:
        for _, event in batch:
            if isinstance(event, ArtifactStored):
                await conn.execute(
                    QUERIES["insert_artifact"], event.artifact_id, event.tenant, event.job_id, event.attempt,
                    event.name, event.key, event.size, event.sha256, event.content_type, event.occurred_at,
                )
            elif isinstance(event, ArtifactExpired):
                await conn.execute(QUERIES["expire_artifact"], event.artifact_id, event.occurred_at, event.tenant)
            elif isinstance(event, ArtifactPreviewed):
                await conn.execute(QUERIES["set_preview"], event.artifact_id, preview_json(event), event.tenant)
            elif isinstance(event, TenantConfigured):
                await conn.execute(QUERIES["configure_tenant"], event.tenant, event.artifact_ttl_s)
