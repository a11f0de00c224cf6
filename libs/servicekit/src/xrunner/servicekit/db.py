"""Postgres: connection pools scoped to a service's schema, and its migrations."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from importlib.resources.abc import Traversable

import asyncpg

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema(schema: str) -> str:
    """Schema names are interpolated into SQL, so only plain identifiers are allowed."""
    if not _SCHEMA.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


async def create_pool(url: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see `schema` first on their search path."""
    check_schema(schema)
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, server_settings={"search_path": f"{schema},public"}
    )
    assert pool is not None
    return pool


_MIGRATION = re.compile(r"^[0-9]+_\w+\.sql$")


def migration_files(folder: Traversable) -> list[tuple[str, str]]:
    """(version, sql) for every `NNN_name.sql` in `folder`, in order; other files (named queries) are not
    migrations."""
    files = sorted((f.name, f) for f in folder.iterdir() if _MIGRATION.match(f.name))
    return [(name.removesuffix(".sql"), f.read_text()) for name, f in files]


async def migrate(conn: asyncpg.Connection, schema: str, migrations: Sequence[tuple[str, str]]) -> list[str]:
    """Apply the migrations `schema` lacks, each in its own transaction, under an advisory lock so that
    concurrent starts of one service apply each exactly once. Returns the versions applied now."""
    check_schema(schema)
    applied_now: list[str] = []
    lock_key = zlib.crc32(f"xrunner.migrate.{schema}".encode())
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations"
            " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")}
        for version, sql in migrations:
            if version in done:
                continue
            await conn.execute(f"SET LOCAL search_path TO {schema}, public")
            await conn.execute(sql)
            await conn.execute(f"INSERT INTO {schema}.schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
    return applied_now
