"""An event of a type this version does not know (a newer writer's, deployed first) is passed over and counted by
every reader of the log: the projector folds what follows it and parks nothing, a job's history keeps its place so
compare-and-set appends still succeed, and a rebuild passes it the same way (docs/contracts.md)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import msgspec
from integration.gateway_projection import SCHEMA
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from support import wait_until

from xrunner.contracts import codec, lifecycle, subjects
from xrunner.contracts.events import Event, JobQueued, JobSubmitted
from xrunner.contracts.spec import JobSpec, ProcessWorkload
from xrunner.gateway.readmodel import JobsProjection
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.projector import Projector, position, rebuild

NEWER = "job.paused.v1"  # a type a later version might add




def newer_event(tenant: str, job: str) -> bytes:
    return msgspec.json.encode({"type": NEWER, "event_id": new_id(), "occurred_at": datetime.now(UTC).isoformat(),
                                "tenant": tenant, "job_id": job, "until": "tomorrow"})


async def submit_pause_queue(store: EventStore, tenant: str) -> tuple[str, int, int]:
    """A job submitted, then paused by a newer writer, then queued: its id, the unknown event's seq, the last seq."""
    job, now = new_id(), datetime.now(UTC)
    common = {"occurred_at": now, "tenant": tenant, "job_id": job}
    submitted = JobSubmitted(event_id=new_id(), spec=JobSpec(workload=ProcessWorkload(argv=["true"])), **common)
    seq = (await store.append(submitted, msg_id=f"{job}:s", expect=0)).seq
    paused = await store.js.publish(subjects.job_events(tenant, job, "paused"), newer_event(tenant, job),
                                    stream=subjects.EVENTS_STREAM)
    assert paused.seq > seq
    queued = JobQueued(event_id=new_id(), pool="default", **common)
    last = (await store.append(queued, msg_id=f"{job}:q", expect=paused.seq)).seq
    return job, paused.seq, last


def counted(consumer: str, metric: str = "xrunner_unknown_events_total") -> float:
    labels = {"consumer": consumer}
    if metric == "xrunner_unknown_events_total":
        labels["type"] = NEWER
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def test_the_codec_tells_an_unknown_type_from_a_malformed_known_one() -> None:
    unknown = codec.unknown_event(newer_event("acme", "j1"))
    assert unknown is not None and unknown[0] == NEWER and type(unknown[1]) is Event
    assert codec.unknown_event(b'{"type": "job.queued.v1", "event_id": "e", "occurred_at": "2026-01-01T00:00:00Z"}') \
        is None  # known (if incomplete): a dead letter, not a newer type
    assert codec.unknown_event(b"{not json") is None


async def test_a_projection_folds_past_an_unknown_event_type_and_parks_nothing(
    own_js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    projection = JobsProjection()
    unknown_before, dead_before = counted(projection.name), counted(projection.name, "xrunner_dead_letters_total")
    job, _, last = await submit_pause_queue(EventStore(own_js), "acme")
    task = asyncio.create_task(Projector(own_js, pool, projection).run())
    try:
        await wait_until(lambda: _at(pool, projection.name, last), what="the position past the queued event")
    finally:
        task.cancel()
    assert await pool.fetchval("SELECT state FROM gateway.jobs WHERE id = $1", job) == "queued"
    assert counted(projection.name) == unknown_before + 1
    assert counted(projection.name, "xrunner_dead_letters_total") == dead_before
    assert (await own_js.stream_info(subjects.DEAD_STREAM)).state.messages == 0


async def test_a_history_keeps_the_unknown_events_place_so_compare_and_set_still_appends(
    own_js: JetStreamContext,
) -> None:
    store = EventStore(own_js)
    job, paused_seq, last = await submit_pause_queue(store, "acme")
    history = await store.history("acme", job)
    assert [seq for seq, _ in history] == [history[0][0], paused_seq, last]
    assert type(history[1][1]) is Event
    view = lifecycle.replay(history)
    assert view is not None and view.state == "queued"
    assert await store.last_seq("acme", job) == last
    queued_again = JobQueued(event_id=new_id(), occurred_at=datetime.now(UTC), tenant="acme", job_id=job, pool="x")
    assert (await store.append(queued_again, msg_id=f"{job}:q2", expect=last)).seq > last


async def test_a_rebuild_passes_the_unknown_event_as_the_live_fold_does(
    own_js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    job, _, last = await submit_pause_queue(EventStore(own_js), "acme")
    async with pool.acquire() as conn:
        await rebuild(own_js, conn, JobsProjection(), SCHEMA)
        assert await position(conn, JobsProjection().name) >= last
    assert await pool.fetchval("SELECT state FROM gateway.jobs WHERE id = $1", job) == "queued"


async def _at(pool: asyncpg.Pool, name: str, seq: int) -> bool:
    async with pool.acquire() as conn:
        return await position(conn, name) >= seq
