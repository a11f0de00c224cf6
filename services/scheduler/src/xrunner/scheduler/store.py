"""Loads the scheduler's working state from its Postgres projection (when it becomes the active scheduler)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from xrunner.contracts import codec
from xrunner.contracts.api import JobView
from xrunner.contracts.policy import Bucket
from xrunner.contracts.stats import TenantLimits
from xrunner.scheduler.state import TenantRec, Usage

LIVE_STATES = ["submitted", "queued", "dispatched", "running"]


async def live_jobs(conn: asyncpg.Connection) -> list[JobView]:
    rows = await conn.fetch("SELECT view::text AS view FROM jobs WHERE state = ANY($1::text[])", LIVE_STATES)
    return [codec.decode(r["view"].encode(), JobView) for r in rows]


async def dispatches(conn: asyncpg.Connection) -> dict[tuple[str, str], tuple[int, datetime]]:
    rows = await conn.fetch(
        "SELECT tenant, id, dispatched_seq, dispatched_at FROM jobs"
        " WHERE state = ANY($1::text[]) AND dispatched_seq IS NOT NULL", LIVE_STATES
    )
    return {(r["tenant"], r["id"]): (int(r["dispatched_seq"]), r["dispatched_at"]) for r in rows}


async def tenants(conn: asyncpg.Connection, defaults: TenantLimits) -> list[TenantRec]:
    rows = await conn.fetch("SELECT * FROM tenants")
    out = []
    for r in rows:
        limits = (
            TenantLimits(
                weight=r["weight"],
                max_inflight=r["max_inflight"],
                max_queued=r["max_queued"],
                submit_rate_per_s=r["submit_rate_per_s"],
                configured=True,
            )
            if r["configured"]
            else defaults
        )
        out.append(
            TenantRec(
                r["tenant"],
                limits,
                Bucket(r["bucket_tokens"], r["bucket_at"]),
                Usage(r["usage_cpu"], r["usage_memory"], r["usage_gpu"], r["usage_at"]),
                r["config_seq"],
                r["bucket_seq"],
            )
        )
    return out
