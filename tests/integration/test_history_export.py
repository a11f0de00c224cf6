"""Export and import of the log as NDJSON against real NATS and Postgres: a tenant's exported history imported into
a fresh log folds into the same gateway read model and scheduler projection; a re-import appends nothing; a bad line
is refused before anything is appended, naming the line."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from integration.gateway_app import GatewayInfra, gateway_infra
from support import PgServer, nats_server, wait_until
from typer.testing import CliRunner

from xrunner.cli import embedded
from xrunner.cli.main import app
from xrunner.contracts import subjects
from xrunner.contracts.events import (
    ArtifactStored,
    JobCancelled,
    JobCancelRequested,
    JobDispatched,
    JobEvent,
    JobLost,
    JobQueued,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
)
from xrunner.contracts.spec import JobSpec, ProcessWorkload
from xrunner.scheduler.app import projection
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.servicekit import db, history, streams
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.importer import import_history
from xrunner.servicekit.projector import Projector

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job_history(tenant: str, job: str, shape: str) -> list[JobEvent]:
    """A job's events as the services write them: `done` (lost once, then run to the end with an artifact) or
    `cancelled` (dispatched, then cancelled)."""
    at = iter(T0 + timedelta(seconds=i) for i in range(100))
    common: dict[str, Any] = {"tenant": tenant, "job_id": job}

    def e(cls: type[JobEvent], **fields: Any) -> JobEvent:
        return cls(event_id=new_id(), occurred_at=next(at), **common, **fields)

    spec = JobSpec(workload=ProcessWorkload(argv=["echo", job]), labels={"shape": shape})
    events = [e(JobSubmitted, spec=spec), e(JobQueued, pool="default", position=1),
              e(JobDispatched, pool="default", attempt=1)]
    if shape == "cancelled":
        return [*events, e(JobCancelRequested, attempt=1, reason="enough"), e(JobCancelled, attempt=1)]
    return [*events, e(JobLost, attempt=1, worker_id="w0"), e(JobDispatched, pool="default", attempt=2),
            e(JobStarted, attempt=2, worker_id="w1", sandbox="process"),
            e(ArtifactStored, attempt=2, artifact_id=new_id(), name="out.txt", size=3, sha256="0" * 64,
              content_type="text/plain", key=f"tenants/{tenant}/jobs/{job}/2/out.txt"),
            e(JobSucceeded, attempt=2, exit_code=0)]


async def append_jobs(store: EventStore, tenant: str, count: int) -> list[str]:
    """`count` jobs of `tenant`, their events interleaved in the log as concurrent jobs' are."""
    jobs = [new_id() for _ in range(count)]
    histories = [job_history(tenant, job, "cancelled" if i % 3 == 0 else "done") for i, job in enumerate(jobs)]
    last = dict.fromkeys(jobs, 0)
    for step in range(max(len(h) for h in histories)):
        for job, events in zip(jobs, histories, strict=True):
            if step < len(events):
                appended = await store.append(events[step], msg_id=events[step].event_id, expect=last[job])
                last[job] = appended.seq
    return jobs


async def views(pool: asyncpg.Pool, tenant: str) -> dict[str, dict[str, Any]]:
    """The read model's views of a tenant's jobs, without `version` (a sequence of the log that folded them)."""
    rows = await pool.fetch("SELECT id, state, artifacts, view::text AS view FROM gateway.jobs WHERE tenant = $1",
                            tenant)
    out = {}
    for row in rows:
        view = json.loads(row["view"])
        view.pop("version")
        out[row["id"]] = {"state": row["state"], "artifacts": row["artifacts"], "view": view}
    return out


async def folded(pool: asyncpg.Pool, tenant: str, jobs: list[str]) -> dict[str, dict[str, Any]]:
    async def all_final() -> dict[str, dict[str, Any]] | None:
        seen = await views(pool, tenant)
        done = set(jobs) <= seen.keys() and all(v["state"] in ("succeeded", "cancelled") for v in seen.values())
        return seen if done else None

    return await wait_until(all_final, timeout=20, what=f"{tenant}'s jobs folded")


@dataclass
class Side(GatewayInfra):
    """A stack's log and gateway read model, and where its database is."""

    database_url: str = ""


@pytest.fixture
async def target(tmp_path: Path, pg_server: PgServer) -> AsyncIterator[Side]:
    """A second stack's log and read model: its own nats-server and database."""
    name = f"target_{new_id()}"
    embedded.create_database(pg_server.host, pg_server.port, name, template="xr_template")
    with nats_server(tmp_path / "target-nats") as url:
        async with gateway_infra(url, pg_server.url(name), "target") as infra:
            yield Side(**vars(infra), database_url=pg_server.url(name))


@pytest.fixture
async def source(fresh_nats_url: str, database_url: str) -> AsyncIterator[Side]:
    async with gateway_infra(fresh_nats_url, database_url, "source") as infra:
        yield Side(**vars(infra), database_url=database_url)


@contextlib.asynccontextmanager
async def scheduler_projection(infra: GatewayInfra, database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The scheduler's projection folding the same log into its own schema of the same database."""
    pool = await db.create_pool(database_url, "scheduler")
    async with pool.acquire() as conn:
        await db.migrate(conn, "scheduler", db.migration_files(files("xrunner.scheduler") / "sql"))
    task = asyncio.create_task(Projector(infra.js, pool, projection(SchedulerSettings())).run())
    try:
        yield pool
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()


async def scheduler_rows(pool: asyncpg.Pool, tenant: str, count: int) -> list[dict[str, Any]]:
    """The scheduler's rows of a tenant's jobs once all `count` are final, without what is a sequence of the log."""

    async def final() -> list[dict[str, Any]] | None:
        rows = await pool.fetch("SELECT * FROM scheduler.jobs WHERE tenant = $1 ORDER BY id", tenant)
        if len(rows) < count or any(r["state"] not in ("succeeded", "cancelled") for r in rows):
            return None
        kept = [{k: v for k, v in dict(r).items() if k not in ("version", "dispatched_seq", "view")} for r in rows]
        for row, r in zip(kept, rows, strict=True):
            row["view"] = {k: v for k, v in json.loads(r["view"]).items() if "seq" not in k and k != "version"}
        return kept

    return await wait_until(final, timeout=20, what=f"the scheduler folded {tenant}'s jobs")


async def test_a_tenants_export_imported_into_a_fresh_log_folds_into_the_same_views(
    source: Side, target: Side
) -> None:
    jobs = await append_jobs(source.store, "acme", 12)
    await append_jobs(source.store, "other", 3)
    expected = await folded(source.pool, "acme", jobs)
    async with scheduler_projection(source, source.database_url) as pool:
        scheduled = await scheduler_rows(pool, "acme", 12)

    exported = io.BytesIO()
    assert await history.export(source.js, history.Filter(tenant="acme"), exported) == 4 * 5 + 8 * 8
    assert history.check(io.BytesIO(exported.getvalue())).scopes == {
        subjects.job_history("acme", job) for job in jobs}
    checked = history.check(io.BytesIO(exported.getvalue()))
    result = await import_history(target.nc, io.BytesIO(exported.getvalue()), checked)
    assert (result.appended, result.skipped) == (84, 0)

    assert await folded(target.pool, "acme", jobs) == expected
    assert await views(target.pool, "other") == {}
    for job in jobs:  # each history was appended whole, in one atomic batch: consecutive sequences
        seqs = [seq for seq, _ in await target.store.history("acme", job)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    async with scheduler_projection(target, target.database_url) as pool:
        assert await scheduler_rows(pool, "acme", 12) == scheduled
    again = await import_history(target.nc, io.BytesIO(exported.getvalue()), checked)
    assert (again.appended, again.skipped) == (0, 84)


async def test_an_imported_event_keeps_its_original_sequence_in_a_header(source: Side, target: Side) -> None:
    [job] = await append_jobs(source.store, "acme", 1)
    original = [seq for seq, _ in await source.store.history("acme", job)]
    exported = io.BytesIO()
    await history.export(source.js, history.Filter(job=job), exported)
    await import_history(target.nc, io.BytesIO(exported.getvalue()), history.check(io.BytesIO(exported.getvalue())))
    imported = [await target.js.get_msg(subjects.EVENTS_STREAM, seq) for seq, _ in
                await target.store.history("acme", job)]
    assert [int(m.headers[history.ORIGINAL_SEQ_HEADER]) for m in imported if m.headers] == original


async def test_an_export_filters_by_event_type_and_time(source: Side) -> None:
    jobs = await append_jobs(source.store, "acme", 3)
    out = io.BytesIO()
    await history.export(source.js, history.Filter(tenant="acme", types=("job.succeeded.v1", "queued")), out)
    kinds = [json.loads(line)["payload"]["type"] for line in out.getvalue().splitlines()]
    assert sorted(kinds) == ["job.queued.v1"] * 3 + ["job.succeeded.v1"] * 2
    later = io.BytesIO()
    assert await history.export(source.js, history.Filter(since=datetime.now(UTC) + timedelta(hours=1)), later) == 0
    earlier = io.BytesIO()
    await history.export(source.js, history.Filter(job=jobs[1], until=datetime.now(UTC) + timedelta(hours=1)),
                         earlier)
    assert len(earlier.getvalue().splitlines()) == 8


def test_a_bad_line_is_refused_by_number_and_nothing_is_appended(tmp_path: Path, fresh_nats_url: str) -> None:
    async def setup() -> bytes:
        nc = await streams.connect(fresh_nats_url, "test")
        js = nc.jetstream()
        await streams.declare(js)
        await append_jobs(EventStore(js), "acme", 2)
        out = io.BytesIO()
        await history.export(js, history.Filter(), out)
        await js.purge_stream(subjects.EVENTS_STREAM)
        await nc.close()
        return out.getvalue()

    async def stored() -> int:
        nc = await streams.connect(fresh_nats_url, "test")
        info = await nc.jetstream().stream_info(subjects.EVENTS_STREAM)
        await nc.close()
        return info.state.messages

    lines = asyncio.run(setup()).splitlines(keepends=True)
    broken = [*lines[:5], lines[5].replace(b'"job.', b'"jbo.', 1), *lines[6:]]
    file = tmp_path / "history.ndjson"
    file.write_bytes(b"".join(broken))
    runner = CliRunner()
    result = runner.invoke(app, ["events", "import", str(file)], env={"XR_NATS_URL": fresh_nats_url})
    assert result.exit_code == 2
    assert "line 6: payload is not a known event" in result.output and "nothing imported" in result.output
    assert asyncio.run(stored()) == 0

    file.write_bytes(b"".join(lines))
    result = runner.invoke(app, ["events", "import", str(file)], env={"XR_NATS_URL": fresh_nats_url})
    assert result.exit_code == 0, result.output
    assert f"imported {len(lines)} events (0 already present)" in result.output
    assert asyncio.run(stored()) == len(lines)
