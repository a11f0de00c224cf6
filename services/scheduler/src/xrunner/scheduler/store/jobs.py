"""The `jobs` table: the live jobs' views and latest dispatches, written by the projection, read by a new leader."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import asyncpg

from xrunner.contracts import codec
from xrunner.contracts.api import JobView
from xrunner.scheduler.store import QUERIES

LIVE_STATES = ["submitted", "queued", "dispatched", "running"]
Dispatch = tuple[str, str, int, datetime]  # tenant, job id, the dispatch's sequence and time


async def live(conn: asyncpg.Connection) -> list[JobView]:
    rows = await conn.fetch(QUERIES["live_jobs"], LIVE_STATES)
    return [codec.decode(r["view"].encode(), JobView) for r in rows]


async def dispatches(conn: asyncpg.Connection) -> dict[tuple[str, str], tuple[int, datetime]]:
    rows = await conn.fetch(QUERIES["live_dispatches"], LIVE_STATES)
    return {(r["tenant"], r["id"]): (int(r["dispatched_seq"]), r["dispatched_at"]) for r in rows}


async def upsert(conn: asyncpg.Connection, views: Iterable[JobView], dispatched: Iterable[Dispatch]) -> None:
    """Write the views (newer versions only) and the dispatches (newer sequences only)."""
    await conn.executemany(QUERIES["upsert_job"], [row(v) for v in views])
    await conn.executemany(QUERIES["set_dispatch"], list(dispatched))


def row(v: JobView) -> tuple[object, ...]:
    """The `upsert_job` parameters of a view: what the table holds of it."""
    return (v.tenant, v.id, v.state, v.attempt, v.pool, v.spec.priority, v.queued_at, v.version,
            codec.encode(v).decode())
