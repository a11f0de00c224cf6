"""Reads of the artifact index: a job's artifacts, one artifact, and those whose retention is up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
import msgspec

from xrunner.contracts.api import PreviewEntry, PreviewKind
from xrunner.contracts.stats import TenantLimits
from xrunner.servicekit.sql import load_queries

QUERIES = load_queries("xrunner.artifacts")
DEFAULT_TTL_S = TenantLimits().artifact_ttl_s  # a tenant never configured keeps its artifacts this long


class StoredPreview(msgspec.Struct, kw_only=True):
    """The `preview` column: the fields of the artifact's `artifact.previewed` event other than its ids."""

    kind: PreviewKind
    reason: str = ""
    text: str | None = None
    line_count: int | None = None
    thumbnail_key: str | None = None
    thumbnail_content_type: str | None = None
    page_count: int | None = None
    entries: list[PreviewEntry] = []
    truncated: bool = False


_preview_decoder = msgspec.json.Decoder(StoredPreview)


@dataclass(frozen=True, slots=True)
class Artifact:
    """One row of the index, with the time retention ends it."""

    id: str
    tenant: str
    job_id: str
    attempt: int
    name: str
    key: str
    size: int
    sha256: str
    content_type: str
    stored_at: datetime
    expires_at: datetime
    expired_at: datetime | None
    preview: StoredPreview | None

    def gone(self, now: datetime) -> bool:
        """Removed by retention, or due to be."""
        return self.expired_at is not None or self.expires_at <= now


@dataclass(frozen=True, slots=True)
class Due:
    """An artifact retention must remove: its object, and its thumbnail's when it has one."""

    id: str
    tenant: str
    job_id: str
    attempt: int
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    pool: asyncpg.Pool

    async def of_job(self, tenant: str, job_id: str, attempt: int | None, now: datetime) -> list[Artifact]:
        rows = await self.pool.fetch(QUERIES["job_artifacts"], DEFAULT_TTL_S, tenant, attempt, now, job_id)
        return [_artifact(row) for row in rows]

    async def get(self, artifact_id: str, tenant: str | None) -> Artifact | None:
        """The artifact `artifact_id` of `tenant` (None: of any tenant)."""
        row = await self.pool.fetchrow(QUERIES["artifact"], DEFAULT_TTL_S, tenant, artifact_id)
        return _artifact(row) if row else None

    async def due(self, now: datetime, limit: int) -> list[Due]:
        rows = await self.pool.fetch(QUERIES["due"], DEFAULT_TTL_S, now, limit)
        return [Due(r["id"], r["tenant"], r["job_id"], r["attempt"], _keys(r["key"], r["preview"])) for r in rows]


def _artifact(row: asyncpg.Record) -> Artifact:
    fields = dict(row)
    fields["preview"] = _preview_decoder.decode(row["preview"]) if row["preview"] else None
    return Artifact(**fields)


def _keys(key: str, preview: str | None) -> tuple[str, ...]:
    thumbnail = _preview_decoder.decode(preview).thumbnail_key if preview else None
    return (key, thumbnail) if thumbnail else (key,)
