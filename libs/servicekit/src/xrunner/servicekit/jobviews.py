"""Tables of folded job views (one `view jsonb` row per (tenant, id)): load a batch's jobs, fold events into them."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from xrunner.contracts import codec, lifecycle
from xrunner.contracts.api import JobView
from xrunner.contracts.events import Event, JobEvent
from xrunner.servicekit.db import check_schema

Views = dict[tuple[str, str], JobView | None]


async def load(conn: asyncpg.Connection, keys: set[tuple[str, str]], table: str = "jobs") -> Views:
    """The current views of `keys` (None for jobs the table does not hold yet)."""
    if not keys:
        return {}
    tenants, ids = zip(*keys, strict=True)
    rows = await conn.fetch(
        f"SELECT j.view::text AS view FROM {check_schema(table)} j"
        " JOIN unnest($1::text[], $2::text[]) AS k(tenant, id) ON j.tenant = k.tenant AND j.id = k.id",
        list(tenants),
        list(ids),
    )
    views: Views = dict.fromkeys(keys)
    for row in rows:
        view = codec.decode(row["view"].encode(), JobView)
        views[(view.tenant, view.id)] = view
    return views


async def fold_batch(conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]], table: str = "jobs") -> Views:
    """Load the batch's jobs and fold its events into them with the shared state machine."""
    views = await load(conn, {(e.tenant, e.job_id) for _, e in batch if isinstance(e, JobEvent)}, table)
    for seq, event in batch:
        if isinstance(event, JobEvent):
            key = (event.tenant, event.job_id)
            views[key] = lifecycle.fold(views.get(key), event, seq)
    return views
