"""The gateway's job read model: folds job events into one row per job, and answers lookups from it."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from xrunner.contracts import codec, subjects
from xrunner.contracts.api import JobView
from xrunner.contracts.events import Event
from xrunner.servicekit import jobviews

UPSERT = """
INSERT INTO jobs (tenant, id, state, created_at, updated_at, version, view)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
ON CONFLICT (tenant, id) DO UPDATE
  SET state = excluded.state, updated_at = excluded.updated_at, version = excluded.version, view = excluded.view
  WHERE jobs.version < excluded.version
"""


class JobsProjection:
    """Folds every job event with the shared state machine (`contracts.lifecycle`)."""

    name = "gateway.jobs"
    filter_subjects = (subjects.JOB_EVENTS_ALL,)

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]]) -> None:
        views = await jobviews.fold_batch(conn, batch)
        rows = [
            (v.tenant, v.id, v.state, v.created_at, v.updated_at, v.version, codec.encode(v).decode())
            for v in views.values()
            if v is not None
        ]
        await conn.executemany(UPSERT, rows)


async def get_job(pool: asyncpg.Pool, tenant: str, job_id: str) -> JobView | None:
    row = await pool.fetchrow("SELECT view::text AS view FROM jobs WHERE tenant = $1 AND id = $2", tenant, job_id)
    return codec.decode(row["view"].encode(), JobView) if row else None
