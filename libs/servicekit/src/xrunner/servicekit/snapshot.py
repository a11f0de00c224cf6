"""Snapshots of a projection: its tables, tracking positions included, copied as one consistent read into
`<schema>_snapshot` (beside it, in the same database), so that a rebuild starts from the snapshot's position and
folds only the log's tail — its cost follows the events since the snapshot, not the log's age."""

from __future__ import annotations

import asyncpg

from xrunner.servicekit.db import check_schema


class NoSnapshot(LookupError):
    """The projection has no snapshot to start from."""


def snapshot_schema(schema: str) -> str:
    return check_schema(f"{schema}_snapshot")


async def tables_of(conn: asyncpg.Connection, schema: str) -> list[str]:
    """The schema's tables but its migrations' record."""
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'"
        " AND table_name <> 'schema_migrations' ORDER BY table_name", schema)
    return [str(r["table_name"]) for r in rows]


async def take(conn: asyncpg.Connection, schema: str, projection: str) -> int:
    """Replace `schema`'s snapshot with a copy of it as of now; returns the position of `projection` it holds.
    One repeatable-read transaction: the projector commits a fold with its position, so the copy is a fold of
    exactly the events up to that position."""
    check_schema(schema)
    snap = snapshot_schema(schema)
    async with conn.transaction(isolation="repeatable_read"):
        await conn.execute(f"DROP SCHEMA IF EXISTS {snap} CASCADE")
        await conn.execute(f"CREATE SCHEMA {snap}")
        for table in await tables_of(conn, schema):
            await conn.execute(f"CREATE TABLE {snap}.{table} AS TABLE {schema}.{table}")
        return await _position(conn, snap, projection)


async def restore(conn: asyncpg.Connection, schema: str, into: str, projection: str) -> int:
    """Fill `into` (migrated, like `schema`) with `schema`'s snapshot; returns the position it starts from."""
    snap, into = snapshot_schema(schema), check_schema(into)
    tables = await tables_of(conn, snap)
    if not tables:
        raise NoSnapshot(f"{schema} has no snapshot: take one first (`xrunner projections snapshot`)")
    async with conn.transaction():
        for table in tables:
            await conn.execute(f"TRUNCATE {into}.{table}")
            await conn.execute(f"INSERT INTO {into}.{table} SELECT * FROM {snap}.{table}")
    return await _position(conn, into, projection)


async def _position(conn: asyncpg.Connection, schema: str, projection: str) -> int:
    row = await conn.fetchrow(f"SELECT position FROM {schema}.projection_position WHERE projection = $1", projection)
    return int(row["position"]) if row else 0
