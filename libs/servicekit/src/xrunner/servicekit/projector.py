"""Folds events from the log into Postgres: the fold and the tracking position commit in one transaction.

A durable pull consumer delivers batches; events at or below the stored position (redeliveries, replays) are
skipped, so a projection is idempotent. `rebuild` folds the whole log from sequence 1 into any schema.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Protocol

import asyncpg
import msgspec
import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError, NotFoundError
from prometheus_client import Counter

from xrunner.contracts import codec, subjects
from xrunner.contracts.events import Event
from xrunner.servicekit.db import check_schema
from xrunner.servicekit.eventstore import read_raw

DEAD_LETTERS = Counter("xrunner_dead_letters_total", "Messages terminated as undecodable", ["consumer"])
FOLDED = Counter("xrunner_projection_events_total", "Events folded into a projection", ["projection"])

log = structlog.get_logger()

TRANSIENT = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)

TRACKING_DDL = """
CREATE TABLE IF NOT EXISTS projection_position (
  projection text PRIMARY KEY,
  position   bigint NOT NULL
);
"""


class Projection(Protocol):
    """A read model: its name, the subjects it folds, and how to fold a batch inside a transaction."""

    @property
    def name(self) -> str: ...

    @property
    def filter_subjects(self) -> Sequence[str]: ...

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]]) -> None: ...


async def position(conn: asyncpg.Connection, name: str, *, lock: bool = False) -> int:
    row = await conn.fetchrow(
        "SELECT position FROM projection_position WHERE projection = $1" + (" FOR UPDATE" if lock else ""), name
    )
    return int(row["position"]) if row else 0


async def fold_batch(conn: asyncpg.Connection, projection: Projection, batch: Sequence[tuple[int, Event]]) -> int:
    """Fold the events newer than the stored position and advance it, in the caller's transaction."""
    current = await position(conn, projection.name, lock=True)
    fresh = [(seq, event) for seq, event in batch if seq > current]
    if not fresh:
        return 0
    await projection.apply(conn, fresh)
    await conn.execute(
        "INSERT INTO projection_position (projection, position) VALUES ($1, $2)"
        " ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
        projection.name,
        fresh[-1][0],
    )
    FOLDED.labels(projection.name).inc(len(fresh))
    return len(fresh)


class Projector:
    """Runs one projection against a durable consumer until stopped."""

    def __init__(
        self,
        js: JetStreamContext,
        pool: asyncpg.Pool,
        projection: Projection,
        *,
        consumer: str,
        batch: int = 256,
        on_commit: asyncio.Event | None = None,
    ) -> None:
        self.js, self.pool, self.projection = js, pool, projection
        self.consumer, self.batch, self.on_commit = consumer, batch, on_commit
        self.caught_up = asyncio.Event()

    async def run(self) -> None:
        sub = await self._subscribe()
        while True:
            try:
                msgs = await sub.fetch(self.batch, timeout=1.0)
            except (TimeoutError, FetchTimeoutError):
                self.caught_up.set()
                continue
            if not msgs:
                continue
            try:
                await self._handle(msgs)
            except TRANSIENT as exc:
                # Transient (a connection cut mid-query too): nak the batch so that it comes back before anything
                # newer, not after ack_wait when newer events may have moved the position past it; the position
                # check dedupes it.
                log.warning("projection batch failed, will retry", projection=self.projection.name, error=str(exc))
                for msg in msgs:
                    with contextlib.suppress(nats.errors.Error, TimeoutError):
                        await msg.nak()
                await asyncio.sleep(1.0)
                continue
            if msgs[-1].metadata.num_pending == 0:
                self.caught_up.set()

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        """Bind the durable cursor, (re)creating it when it is missing or ahead of the stored position (the
        database was restored or rebuilt): Postgres, not the consumer, is the source of truth."""
        async with self.pool.acquire() as conn:
            start = await position(conn, self.projection.name)
        try:
            info = await self.js.consumer_info(subjects.EVENTS_STREAM, self.consumer)
            ahead = info.ack_floor is not None and (info.ack_floor.stream_seq or 0) > start
            filters = info.config.filter_subjects or (
                [info.config.filter_subject] if info.config.filter_subject else []
            )
            if ahead or sorted(filters) != sorted(self.projection.filter_subjects):
                log.warning(
                    "consumer does not match the projection; recreating", consumer=self.consumer, position=start
                )
                await self.js.delete_consumer(subjects.EVENTS_STREAM, self.consumer)
                raise NotFoundError
        except NotFoundError:
            await self.js.add_consumer(
                subjects.EVENTS_STREAM,
                ConsumerConfig(
                    durable_name=self.consumer,
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=start + 1,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=30.0,
                    max_deliver=20,
                    max_ack_pending=20_000,
                    filter_subjects=list(self.projection.filter_subjects),
                ),
            )
        return await self.js.pull_subscribe_bind(durable=self.consumer, stream=subjects.EVENTS_STREAM)

    async def _handle(self, msgs: list[Msg]) -> None:
        batch: list[tuple[int, Event]] = []
        good: list[Msg] = []
        for msg in msgs:
            try:
                batch.append((msg.metadata.sequence.stream, codec.decode_event(msg.data)))
                good.append(msg)
            except (msgspec.DecodeError, msgspec.ValidationError):
                DEAD_LETTERS.labels(self.consumer).inc()
                log.error("undecodable event terminated", consumer=self.consumer, subject=msg.subject)
                await msg.term()
        async with self.pool.acquire() as conn, conn.transaction():
            folded = await fold_batch(conn, self.projection, batch)
        for msg in good:
            await msg.ack()
        if folded and self.on_commit is not None:
            self.on_commit.set()


async def rebuild(js: JetStreamContext, conn: asyncpg.Connection, projection: Projection, schema: str) -> int:
    """Fold the whole log from sequence 1 into `schema` (whose tables must exist and be empty)."""
    check_schema(schema)
    folded = 0
    batch: list[tuple[int, Event]] = []
    async with conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {schema}, public")
        for subject in projection.filter_subjects:
            async for seq, data in read_raw(js, subjects.EVENTS_STREAM, subject):
                batch.append((seq, codec.decode_event(data)))
        batch.sort(key=lambda item: item[0])
        for start in range(0, len(batch), 1000):
            folded += await fold_batch(conn, projection, batch[start : start + 1000])
    return folded
