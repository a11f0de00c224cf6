"""The `jobs` table: the live jobs' views and latest dispatches, written by the projection, read by a new leader."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    """Write the views (newer versions only) and the dispatches (newer sequences only), one statement each."""
    if rows := [row(v) for v in views]:
        await conn.execute(QUERIES["upsert_jobs"], *columns(rows))
    latest: dict[tuple[str, str], Dispatch] = {}
    for d in dispatched:  # a job dispatched twice in one batch: its later dispatch
        if (d[0], d[1]) not in latest or latest[(d[0], d[1])][2] < d[2]:
            latest[(d[0], d[1])] = d
    if latest:
        await conn.execute(QUERIES["set_dispatches"], *columns(list(latest.values())))


def columns(rows: Sequence[tuple[object, ...]]) -> list[list[object]]:
    """Rows as one list per column: the arrays a set-based statement unnests."""
    return [list(column) for column in zip(*rows, strict=True)]


def row(v: JobView) -> tuple[object, ...]:
    """The `upsert_jobs` columns of a view: what the table holds of it."""
    return (v.tenant, v.id, v.state, v.attempt, v.pool, v.spec.priority, v.queued_at, v.version,
            codec.encode(v).decode())
