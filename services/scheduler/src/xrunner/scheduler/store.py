"""The scheduler's queries over its projection."""

from __future__ import annotations

import asyncpg

from xrunner.contracts import codec
from xrunner.contracts.api import JobView
from xrunner.scheduler.dispatch import Candidate


async def queued(pool: asyncpg.Pool, limit: int) -> list[Candidate]:
    rows = await pool.fetch(
        "SELECT tenant, id, pool, priority, queued_at, attempt, version FROM jobs WHERE state = 'queued'"
        " ORDER BY priority DESC, queued_at, id LIMIT $1",
        limit,
    )
    return [
        Candidate(r["tenant"], r["id"], r["pool"], r["priority"], r["queued_at"], r["attempt"], r["version"])
        for r in rows
    ]


async def active_per_pool(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT pool, count(*) AS n FROM jobs WHERE state IN ('dispatched', 'running') GROUP BY pool"
    )
    return {r["pool"]: int(r["n"]) for r in rows}


async def queue_counts(pool: asyncpg.Pool, job_pool: str) -> tuple[int, int]:
    row = await pool.fetchrow(
        "SELECT count(*) AS total, count(*) FILTER (WHERE pool = $1) AS in_pool FROM jobs WHERE state = 'queued'",
        job_pool,
    )
    assert row is not None
    return int(row["total"]), int(row["in_pool"])


async def stale_dispatches(pool: asyncpg.Pool, older_than_s: float) -> list[tuple[JobView, int]]:
    """Jobs dispatched long ago that no worker started: their run message may never have been published."""
    rows = await pool.fetch(
        "SELECT view::text AS view, dispatched_seq FROM jobs WHERE state = 'dispatched'"
        " AND dispatched_at < now() - make_interval(secs => $1)",
        older_than_s,
    )
    return [(codec.decode(r["view"].encode(), JobView), int(r["dispatched_seq"])) for r in rows]
