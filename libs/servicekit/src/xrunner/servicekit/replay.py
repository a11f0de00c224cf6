"""Rebuilds a service's projection from sequence 1 into a scratch schema and compares it with the live one:
the check that a projection is a pure fold of the log, and the `rebuild` command every service with a projection
offers (`python -m xrunner.<service> rebuild`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Protocol, runtime_checkable

import asyncpg
from nats.js import JetStreamContext

from xrunner.servicekit import db, snapshot
from xrunner.servicekit.archive import Archive
from xrunner.servicekit.blobs import open_blobs
from xrunner.servicekit.projector import Projection, rebuild
from xrunner.servicekit.runtime import Command, Runtime


@dataclass(frozen=True)
class Comparison:
    folded: int
    tables: dict[str, tuple[int, int]]  # table -> (live rows, rebuilt rows)
    differences: list[str]

    @property
    def equal(self) -> bool:
        return not self.differences

    def report(self) -> str:
        lines = [f"folded {self.folded} events; rows (live, rebuilt): {self.tables}"]
        lines += [f"DIFFERENT {d}" for d in self.differences]
        lines.append("rebuild equals the live projection" if self.equal else "rebuild DIFFERS from the live projection")
        return "\n".join(lines)


async def rebuild_and_compare(
    js: JetStreamContext,
    conn: asyncpg.Connection,
    projection: Projection,
    live_schema: str,
    migrations: Traversable,
    tables: Sequence[tuple[str, str]],
    *,
    archive: Archive | None = None,
    from_snapshot: bool = False,
) -> Comparison:
    """Fold the log into `<live_schema>_rebuild` (recreated; with `from_snapshot`, filled with the live schema's
    snapshot and folded from its position on) and compare `tables` — (name, ORDER BY key) pairs — row by row with
    the live schema. Run it when the live projection has caught up (no writes in flight)."""
    scratch = db.check_schema(f"{live_schema}_rebuild")
    await conn.execute(f"DROP SCHEMA IF EXISTS {scratch} CASCADE")
    await db.migrate(conn, scratch, db.migration_files(migrations))
    if from_snapshot:
        await snapshot.restore(conn, live_schema, scratch, projection.name)
    folded = await rebuild(js, conn, projection, scratch, archive)
    counts: dict[str, tuple[int, int]] = {}
    differences: list[str] = []
    for table, order in tables:
        live = await conn.fetch(f"SELECT * FROM {live_schema}.{table} ORDER BY {order}")
        built = await conn.fetch(f"SELECT * FROM {scratch}.{table} ORDER BY {order}")
        counts[table] = (len(live), len(built))
        live_rows, built_rows = [dict(r) for r in live], [dict(r) for r in built]
        if live_rows != built_rows:
            missing = len(live_rows) - len(built_rows)
            first = next((i for i, (a, b) in enumerate(zip(live_rows, built_rows, strict=False)) if a != b), None)
            differences.append(f"{table}: {len(live_rows)} live vs {len(built_rows)} rebuilt rows ({missing:+d})"
                               + (f"; first difference at row {first}: {live_rows[first]} != {built_rows[first]}"
                                  if first is not None else ""))
    return Comparison(folded, counts, differences)


@runtime_checkable
class WithSchema(Protocol):
    """Settings of a service that keeps its projection in a Postgres schema."""

    @property
    def schema(self) -> str: ...


def rebuild_command(package: str, projection: Callable[[Any], Projection],
                    tables: Sequence[tuple[str, str]], *, from_snapshot: bool = False) -> Command:
    """The `rebuild` command of the service in `package` (its migrations in `<package>/sql`): refold the whole log
    (or, `from_snapshot`, its tail after the projection's snapshot) with `projection(settings)` into
    `<schema>_rebuild`, reading the archive for what the stream no longer holds; print the comparison of `tables`;
    exit 0 when equal."""

    async def command(runtime: Runtime) -> int:
        settings = runtime.settings
        assert isinstance(settings, WithSchema), f"{runtime.service} keeps no projection"
        migrations = files(package) / "sql"
        js = await runtime.connect_nats()
        pool = await runtime.connect_postgres(settings.schema, migrations)
        blobs = open_blobs(runtime.settings)
        try:
            async with pool.acquire() as conn:
                result = await rebuild_and_compare(
                    js, conn, projection(settings), settings.schema, migrations, tables,
                    archive=Archive(blobs) if blobs else None, from_snapshot=from_snapshot)
        except snapshot.NoSnapshot as exc:
            print(exc)
            return 2
        finally:
            if blobs is not None:
                await blobs.close()
        print(result.report())
        return 0 if result.equal else 1

    return command


def snapshot_command(package: str, projection: Callable[[Any], Projection]) -> Command:
    """The `snapshot` command of the service in `package`: copy its projection, with its position, beside it."""

    async def command(runtime: Runtime) -> int:
        settings = runtime.settings
        assert isinstance(settings, WithSchema), f"{runtime.service} keeps no projection"
        pool = await runtime.connect_postgres(settings.schema, files(package) / "sql")
        async with pool.acquire() as conn:
            at = await snapshot.take(conn, settings.schema, projection(settings).name)
        print(f"snapshot of {settings.schema} at position {at} in {snapshot.snapshot_schema(settings.schema)}")
        return 0

    return command
