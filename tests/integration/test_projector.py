"""Projections against real NATS and Postgres: idempotent, resumed from the committed position after a failure or a
reset, past undecodable events, and a rebuild equals the live fold."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.resources import files

import asyncpg
from integration.gateway_projection import SCHEMA
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from support import wait_until

from xrunner.contracts import subjects
from xrunner.contracts.events import (
    Event,
    JobDispatched,
    JobFailed,
    JobQueued,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
)
from xrunner.contracts.spec import JobSpec, ProcessWorkload
from xrunner.gateway.readmodel import JobsProjection
from xrunner.servicekit import db
from xrunner.servicekit.deadletter import ERROR_HEADER, SEQ_HEADER, SUBJECT_HEADER
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.projector import Projector, fold_batch, position, rebuild


async def run_job(store: EventStore, tenant: str, exit_ok: bool = True) -> str:
    """Append a whole successful history for one job; returns its id."""
    job, now = new_id(), datetime.now(UTC)
    common = {"occurred_at": now, "tenant": tenant, "job_id": job}
    seq = (
        await store.append(
            JobSubmitted(event_id=new_id(), spec=JobSpec(workload=ProcessWorkload(argv=["true"])), **common),
            msg_id=f"{job}:s",
            expect=0,
        )
    ).seq
    for event in (
        JobQueued(event_id=new_id(), pool="default", **common),
        JobDispatched(event_id=new_id(), pool="default", attempt=1, **common),
        JobStarted(event_id=new_id(), worker_id="w1", sandbox="process", attempt=1, **common),
        JobSucceeded(event_id=new_id(), attempt=1, **common),
    ):
        seq = (await store.append(event, msg_id=f"{job}:{type(event).__name__}", expect=seq)).seq
    return job


async def table(pool: asyncpg.Pool, schema: str) -> list[tuple[object, ...]]:
    rows = await pool.fetch(f"SELECT tenant, id, state, version, view::text AS view FROM {schema}.jobs ORDER BY id")
    return [tuple(r) for r in rows]


async def test_the_live_projector_folds_jobs_to_their_final_state(own_js: JetStreamContext, pool: asyncpg.Pool) -> None:
    store = EventStore(own_js)
    jobs = [await run_job(store, "acme") for _ in range(5)]
    task = asyncio.create_task(Projector(own_js, pool, JobsProjection()).run())
    try:
        rows = await wait_until(lambda: _succeeded(pool, len(jobs)), what="five succeeded jobs")
        assert sorted(r["id"] for r in rows) == sorted(jobs)
    finally:
        task.cancel()


async def _succeeded(pool: asyncpg.Pool, n: int) -> list[asyncpg.Record] | None:
    rows = await pool.fetch("SELECT id FROM gateway.jobs WHERE state = 'succeeded'")
    return rows if len(rows) == n else None


async def test_folding_a_redelivered_batch_changes_nothing(own_js: JetStreamContext, pool: asyncpg.Pool) -> None:
    store = EventStore(own_js)
    await run_job(store, "acme")
    batch = [item async for item in store.read(subjects.JOB_EVENTS_ALL)]
    projection = JobsProjection()
    async with pool.acquire() as conn, conn.transaction():
        assert await fold_batch(conn, projection, batch) == len(batch)
    before = await table(pool, SCHEMA)
    async with pool.acquire() as conn, conn.transaction():
        assert await fold_batch(conn, projection, batch) == 0
        assert await fold_batch(conn, projection, batch[:2]) == 0
        assert await position(conn, projection.name) == batch[-1][0]
    assert await table(pool, SCHEMA) == before


async def test_a_restarted_projector_resumes_without_refolding(own_js: JetStreamContext, pool: asyncpg.Pool) -> None:
    store = EventStore(own_js)
    await run_job(store, "acme")
    first = Projector(own_js, pool, JobsProjection())
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.caught_up.wait(), 10)
    task.cancel()
    before = await table(pool, SCHEMA)
    # The database is reset behind the consumer's back: the projector must rewind to the stored position.
    await pool.execute("TRUNCATE gateway.jobs, gateway.projection_position")
    second = Projector(own_js, pool, JobsProjection())
    task = asyncio.create_task(second.run())
    try:
        await wait_until(lambda: _same(pool, before), what="the rebuilt rows")
    finally:
        task.cancel()


async def _same(pool: asyncpg.Pool, expected: list[tuple[object, ...]]) -> bool:
    return await table(pool, SCHEMA) == expected


async def test_a_rebuild_from_sequence_one_equals_the_live_projection(
    own_js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    store = EventStore(own_js)
    for tenant in ("acme", "globex", "acme"):
        await run_job(store, tenant)
    live = Projector(own_js, pool, JobsProjection())
    task = asyncio.create_task(live.run())
    await wait_until(lambda: _succeeded(pool, 3), what="live fold")
    task.cancel()
    async with pool.acquire() as conn:
        await db.migrate(conn, "gateway_rebuild", db.migration_files(files("xrunner.gateway") / "sql"))
        assert await rebuild(own_js, conn, JobsProjection(), "gateway_rebuild") == 15
    assert await table(pool, "gateway_rebuild") == await table(pool, SCHEMA)


class FailsOnce(JobsProjection):
    """The gateway's projection, except that its `nth` batch writes half its rows and then loses the database."""

    def __init__(self, nth: int) -> None:
        self.nth, self.calls = nth, 0

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]]) -> None:
        self.calls += 1
        if self.calls == self.nth:
            await super().apply(conn, batch[: len(batch) // 2])
            raise ConnectionResetError("the database went away mid-batch")
        await super().apply(conn, batch)


async def test_a_batch_that_fails_mid_stream_is_folded_again_and_nothing_is_lost(
    own_js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    store = EventStore(own_js)
    jobs = [await run_job(store, "acme") for _ in range(20)]
    last = (await own_js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
    projection = FailsOnce(nth=2)
    task = asyncio.create_task(Projector(own_js, pool, projection, batch=10).run())
    try:
        await wait_until(lambda: _at(pool, projection.name, last), what="the position to reach the log's end")
    finally:
        task.cancel()
    rows = await pool.fetch("SELECT id, state FROM gateway.jobs")
    assert sorted((r["id"], r["state"]) for r in rows) == sorted((job, "succeeded") for job in jobs)
    assert projection.calls > 10  # the second of ten batches failed once and was folded again
    async with pool.acquire() as conn:
        await db.migrate(conn, "gateway_rebuild", db.migration_files(files("xrunner.gateway") / "sql"))
        await rebuild(own_js, conn, JobsProjection(), "gateway_rebuild")
    assert await table(pool, "gateway_rebuild") == await table(pool, SCHEMA)


async def _at(pool: asyncpg.Pool, name: str, seq: int) -> bool:
    async with pool.acquire() as conn:
        return await position(conn, name) >= seq


async def test_an_undecodable_event_is_counted_and_passed(own_js: JetStreamContext, pool: asyncpg.Pool) -> None:
    store = EventStore(own_js)
    job = await run_job(store, "acme")
    projection = JobsProjection()
    before = _dead_letters(projection.name)
    garbage = await own_js.publish(subjects.job_events("acme", job, "succeeded"), b"{not an event")
    task = asyncio.create_task(Projector(own_js, pool, projection).run())
    try:
        await wait_until(lambda: _at(pool, projection.name, garbage.seq), what="the position past the garbage")
    finally:
        task.cancel()
    assert _dead_letters(projection.name) == before + 1
    assert await pool.fetchval("SELECT state FROM gateway.jobs WHERE id = $1", job) == "succeeded"
    [(subject, headers, data)] = await dead_letters(own_js)
    assert (subject, headers[SEQ_HEADER], data) == (f"xr.dead.gateway_jobs.acme.{job}", str(garbage.seq),
                                                    b"{not an event")


def _dead_letters(projection: str) -> float:
    return REGISTRY.get_sample_value("xrunner_dead_letters_total", {"consumer": projection}) or 0.0


async def park_job(store: EventStore, tenant: str, reason: str) -> tuple[str, int]:
    """Append a job that a buggy worker ends with `job.failed` carrying `reason`; its id and that event's seq."""
    job, now = new_id(), datetime.now(UTC)
    common = {"occurred_at": now, "tenant": tenant, "job_id": job}
    seq = 0
    for event in (
        JobSubmitted(event_id=new_id(), spec=JobSpec(workload=ProcessWorkload(argv=["true"])), **common),
        JobQueued(event_id=new_id(), pool="default", **common),
        JobDispatched(event_id=new_id(), pool="default", attempt=1, **common),
        JobStarted(event_id=new_id(), worker_id="w1", sandbox="process", attempt=1, **common),
        JobFailed(event_id=new_id(), attempt=1, reason=reason, exit_code=1, **common),
    ):
        seq = (await store.append(event, msg_id=f"{job}:{type(event).__name__}", expect=seq)).seq
    return job, seq


async def dead_letters(js: JetStreamContext) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message parked in `XR_DEAD`: its subject, headers and data."""
    out = []
    for seq in range(1, (await js.stream_info(subjects.DEAD_STREAM)).state.last_seq + 1):
        msg = await js.get_msg(subjects.DEAD_STREAM, seq)
        out.append((msg.subject or "", dict(msg.headers or {}), msg.data or b""))
    return out


async def test_an_event_postgres_refuses_is_parked_and_every_other_event_is_folded(
    own_js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    store = EventStore(own_js)
    before = [await run_job(store, "acme") for _ in range(3)]
    poisoned, poison_seq = await park_job(store, "acme", "stderr: \x00\x1b[31m")
    after = [await run_job(store, "globex") for _ in range(3)]
    last = (await own_js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
    projection = JobsProjection()
    counted = _dead_letters(projection.name)
    task = asyncio.create_task(Projector(own_js, pool, projection).run())
    try:
        await wait_until(lambda: _at(pool, projection.name, last), what="the position to pass the poison")
    finally:
        task.cancel()
    rows = {r["id"]: r["state"] for r in await pool.fetch("SELECT id, state FROM gateway.jobs")}
    assert rows == {**dict.fromkeys(before + after, "succeeded"), poisoned: "running"}
    [(subject, headers, data)] = await dead_letters(own_js)
    assert subject == subjects.dead_letters(projection.name, "acme", poisoned)
    assert subject == f"xr.dead.gateway_jobs.acme.{poisoned}"
    assert headers[SEQ_HEADER] == str(poison_seq)
    assert headers[SUBJECT_HEADER] == subjects.job_events("acme", poisoned, "failed")
    assert "\x00" not in headers[ERROR_HEADER] and "Error" in headers[ERROR_HEADER], headers
    assert data == (await own_js.get_msg(subjects.EVENTS_STREAM, poison_seq)).data
    assert _dead_letters(projection.name) == counted + 1
    async with pool.acquire() as conn:
        await db.migrate(conn, "gateway_rebuild", db.migration_files(files("xrunner.gateway") / "sql"))
        assert await rebuild(own_js, conn, JobsProjection(), "gateway_rebuild") == last - 1
    assert await table(pool, "gateway_rebuild") == await table(pool, SCHEMA)


class RaisesFor(JobsProjection):
    """The gateway's projection, except that its fold raises for one event (as a fold bug would)."""

    def __init__(self, poison: str) -> None:
        self.poison = poison

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]]) -> None:
        await super().apply(conn, batch)
        if any(event.event_id == self.poison for _, event in batch):
            raise KeyError(f"no such pool for {self.poison}")


async def test_a_fold_that_raises_for_one_event_parks_it_and_folds_the_rest(
    own_js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    store = EventStore(own_js)
    jobs = [await run_job(store, "acme") for _ in range(10)]
    middle = [item async for item in store.read(subjects.job_history("acme", jobs[5]))]
    poison_seq, poison = middle[2]  # the sixth job's dispatch, in the middle of the first batch
    last = (await own_js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
    projection = RaisesFor(poison.event_id)
    task = asyncio.create_task(Projector(own_js, pool, projection, batch=64).run())
    try:
        await wait_until(lambda: _at(pool, projection.name, last), what="the position to pass the poison")
    finally:
        task.cancel()
    rows = {r["id"]: r["state"] for r in await pool.fetch("SELECT id, state FROM gateway.jobs")}
    # Without its dispatch the sixth job's start and success belong to no live attempt: it stays queued.
    assert rows == {**dict.fromkeys(jobs, "succeeded"), jobs[5]: "queued"}
    [(_, headers, _)] = await dead_letters(own_js)
    assert headers[SEQ_HEADER] == str(poison_seq)
    assert headers[ERROR_HEADER] == f"KeyError: 'no such pool for {poison.event_id}'"


class Batches(JobsProjection):
    """The gateway's projection, noting the size of each batch it folds."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]]) -> None:
        await super().apply(conn, batch)
        self.sizes.append(len(batch))


async def test_events_that_arrive_while_the_projector_lingers_share_one_fold(
    own_js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    store, projection = EventStore(own_js), Batches()
    task = asyncio.create_task(Projector(own_js, pool, projection, linger_s=2.0).run())
    try:
        await run_job(store, "acme")  # five events: folded at once and in as few folds as they arrive
        await wait_until(lambda: _succeeded(pool, 1), what="the first job")
        folds = len(projection.sizes)
        await run_job(store, "acme")  # within the linger after the last fold (five appends take milliseconds)
        await wait_until(lambda: _succeeded(pool, 2), what="the second job")
        assert projection.sizes[folds:] == [5], projection.sizes
    finally:
        task.cancel()
