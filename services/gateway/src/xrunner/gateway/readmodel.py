"""The gateway's `jobs` table: the projection that folds job events into one row per job, and the reads of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from xrunner.contracts import codec, subjects
from xrunner.contracts.api import JobList, JobView
from xrunner.contracts.events import ArtifactExpired, ArtifactStored, Event, JobEvent
from xrunner.gateway.listing import decode_cursor, encode_cursor
from xrunner.servicekit import jobviews
from xrunner.servicekit.sql import load_queries

QUERIES = load_queries("xrunner.gateway")


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
        if rows:
            await conn.execute(QUERIES["upsert_jobs"], *map(list, zip(*rows, strict=True)))
        counts = artifact_counts(batch)
        await conn.executemany(QUERIES["count_artifacts"], [(*key, n) for key, n in counts.items() if n])

    async def forget(self, conn: asyncpg.Connection, tenant: str, job_id: str) -> None:
        """Drop the job's row, so that its history can be folded again (a dead letter's re-drive)."""
        await conn.execute(QUERIES["forget_job"], tenant, job_id)


def artifact_delta(event: Event) -> int:
    """How an event changes its job's artifact count: every attempt's stored artifacts count until they expire."""
    return 1 if isinstance(event, ArtifactStored) else -1 if isinstance(event, ArtifactExpired) else 0


def artifact_counts(events: Sequence[tuple[int, Event]]) -> dict[tuple[str, str], int]:
    """The change in each job's artifact count that `events` make."""
    counts: dict[tuple[str, str], int] = {}
    for _, event in events:
        if isinstance(event, JobEvent) and (delta := artifact_delta(event)):
            counts[(event.tenant, event.job_id)] = counts.get((event.tenant, event.job_id), 0) + delta
    return counts


@dataclass(frozen=True)
class JobsTable:
    """Reads of the read model: one job, or a page of a tenant's jobs."""

    pool: asyncpg.Pool

    async def get(self, tenant: str, job_id: str) -> JobView | None:
        row = await self.pool.fetchrow(QUERIES["get_job"], tenant, job_id)
        return _view(row) if row else None

    async def page(self, tenant: str, *, states: list[str], labels: dict[str, str], created_after: datetime | None,
                   limit: int, cursor: str | None) -> JobList:
        """Jobs filtered by state (any of), labels (all of) and creation time, newest first, after `cursor`;
        BadCursor when the cursor is not one this API handed out."""
        before_at, before_id = decode_cursor(cursor) if cursor is not None else (None, None)
        if any("\x00" in key + value for key, value in labels.items()):
            return JobList(jobs=[])  # no stored label holds a NUL (specs refuse it), and jsonb could not take it
        rows = await self.pool.fetch(QUERIES["list_jobs"], tenant, states or None,
                                     codec.encode(labels).decode() if labels else None, created_after,
                                     before_at, limit + 1, before_id)
        views = [_view(row) for row in rows]
        more = len(views) > limit
        views = views[:limit]
        return JobList(jobs=views, next_cursor=encode_cursor(views[-1]) if more and views else None)


def _view(row: asyncpg.Record) -> JobView:
    view = codec.decode(row["view"].encode(), JobView)
    view.artifacts = row["artifacts"]
    return view
