"""The `tenants` table: each tenant's limits, submit-rate bucket and decayed usage, as the scheduler folds them."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from xrunner.contracts.policy import Bucket
from xrunner.contracts.stats import TenantLimits
from xrunner.scheduler.state import TenantRec, Usage
from xrunner.scheduler.store import QUERIES


async def load(conn: asyncpg.Connection, defaults: TenantLimits) -> list[TenantRec]:
    """Every tenant; one never configured has `defaults`."""
    return [_rec(r, defaults) for r in await conn.fetch(QUERIES["all_tenants"])]


async def upsert(conn: asyncpg.Connection, tenants: Iterable[TenantRec]) -> None:
    await conn.executemany(QUERIES["upsert_tenant"], [row(t) for t in tenants])


def _rec(r: asyncpg.Record, defaults: TenantLimits) -> TenantRec:
    limits = defaults
    if r["configured"]:
        limits = TenantLimits(weight=r["weight"], max_inflight=r["max_inflight"], max_queued=r["max_queued"],
                              submit_rate_per_s=r["submit_rate_per_s"], configured=True)
    return TenantRec(r["tenant"], limits, Bucket(r["bucket_tokens"], r["bucket_at"]),
                     Usage(r["usage_cpu"], r["usage_memory"], r["usage_gpu"], r["usage_at"]),
                     r["config_seq"], r["bucket_seq"])


def row(t: TenantRec) -> tuple[object, ...]:
    """The `upsert_tenant` parameters of a tenant: what the table holds of it."""
    lim = t.limits
    return (t.name, lim.weight, lim.max_inflight, lim.max_queued, lim.submit_rate_per_s, lim.configured,
            t.config_seq, t.bucket.tokens, t.bucket.at, t.bucket_seq, t.usage.cpu, t.usage.memory, t.usage.gpu,
            t.usage.at)
