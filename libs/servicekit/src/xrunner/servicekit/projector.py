"""Folds events from the log into Postgres: the fold and the tracking position commit in one transaction.

The committed position is the projection's only cursor. The projector reads it, follows the log from position + 1
with an ephemeral consumer that needs no acks, and after any failure (a batch that did not commit, a gap in what
the consumer delivered, a lost connection) drops that consumer and starts again from the position it reads back.
Events at or below the position are skipped, so a projection is idempotent. `rebuild` folds the whole log from
sequence 1 into any schema.

A failure that is the events' own (`deadletter.permanent`: Postgres refuses a value, a fold raises) does not stop
the projection: the batch is folded again event by event, each event that still fails is parked in the dead-letter
stream (undecodable ones too) and the position passes it. A rebuild skips the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import asyncpg
import msgspec
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge

from xrunner.contracts import subjects
from xrunner.contracts.events import Event
from xrunner.servicekit.archive import Archive, read_log
from xrunner.servicekit.consumer import DEAD_LETTERS
from xrunner.servicekit.db import check_schema
from xrunner.servicekit.deadletter import describe, park, permanent
from xrunner.servicekit.eventstore import decode_or_pass
from xrunner.servicekit.pull import pull

FOLDED = Counter("xrunner_projection_events_total", "Events folded into a projection", ["projection"])
RESTARTS = Counter("xrunner_projection_restarts_total", "Times a projection re-read its position", ["projection"])
PENDING = Gauge("xrunner_projection_pending_events", "Events in the log past what the projection has folded, as of "
                "its last fetch", ["projection"])

MAX_BACKOFF_S = 5.0

log = structlog.get_logger()


class Projection(Protocol):
    """A read model: its name, the subjects it folds, and how to fold a batch inside a transaction."""

    @property
    def name(self) -> str: ...

    @property
    def filter_subjects(self) -> Sequence[str]: ...

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]]) -> None: ...


class Gap(Exception):
    """The consumer skipped a delivery (its sequence jumped): what follows must not be folded."""


async def position(conn: asyncpg.Connection, name: str, *, lock: bool = False) -> int:
    row = await conn.fetchrow(
        "SELECT position FROM projection_position WHERE projection = $1" + (" FOR UPDATE" if lock else ""), name
    )
    return int(row["position"]) if row else 0


async def advance(conn: asyncpg.Connection, name: str, to: int) -> None:
    """Set the position of cursor `name` (a projection's, or another consumer's kept in the same table)."""
    await conn.execute(
        "INSERT INTO projection_position (projection, position) VALUES ($1, $2)"
        " ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
        name,
        to,
    )


async def fold_batch(
    conn: asyncpg.Connection, projection: Projection, batch: Sequence[tuple[int, Event]], *, through: int = 0
) -> int:
    """Fold the events newer than the stored position and advance it to the last of them (or to `through`, the
    last sequence read, when that is later: undecodable events are passed), in the caller's transaction."""
    current = await position(conn, projection.name, lock=True)
    fresh = [(seq, event) for seq, event in batch if seq > current]
    end = max(fresh[-1][0] if fresh else 0, through)
    if end <= current:
        return 0
    if fresh:
        await projection.apply(conn, fresh)
    await advance(conn, projection.name, end)
    FOLDED.labels(projection.name).inc(len(fresh))
    return len(fresh)


Park = Callable[[int, BaseException], Awaitable[object]]


async def fold_or_park(
    conn: asyncpg.Connection, projection: Projection, batch: Sequence[tuple[int, Event]], park: Park, *,
    through: int = 0,
) -> int:
    """`fold_batch` in a savepoint of the caller's transaction; when it fails permanently, fold the batch again one
    event per savepoint, hand each event that still fails to `park`, and advance the position past them all.
    Transient failures propagate (the caller retries the batch)."""
    try:
        async with conn.transaction():
            return await fold_batch(conn, projection, batch, through=through)
    except Exception as exc:
        if not permanent(exc):
            raise
    folded = 0
    for item in batch:
        try:
            async with conn.transaction():
                folded += await fold_batch(conn, projection, [item])
        except Exception as exc:
            if not permanent(exc):
                raise
            await park(item[0], exc)
    await fold_batch(conn, projection, [], through=max(through, batch[-1][0] if batch else 0))
    return folded


def decode(projection: str, seq: int, data: bytes) -> tuple[int, Event] | None:
    """The event at `seq`, or None (counted) when it cannot be decoded: a projection passes it and goes on."""
    try:
        event = decode_or_pass(data, projection)
        return None if type(event) is Event else (seq, event)  # a type this version does not know: passed
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        DEAD_LETTERS.labels(projection).inc()
        log.error("undecodable event skipped", projection=projection, seq=seq, error=str(exc))
        return None


class Projector:
    """Runs one projection until stopped, from its committed position."""

    def __init__(
        self,
        js: JetStreamContext,
        pool: asyncpg.Pool,
        projection: Projection,
        *,
        batch: int = 256,
        linger_s: float = 0.0,
        on_commit: asyncio.Event | None = None,
    ) -> None:
        """`linger_s`: after folding a batch smaller than `batch`, wait this long before pulling again, so the events
        that arrive meanwhile share the next transaction and pull (the first event after a quiet spell is folded at
        once; under load each fold carries more events for the same fixed cost)."""
        self.js, self.pool, self.projection = js, pool, projection
        self.batch, self.linger_s, self.on_commit = batch, linger_s, on_commit
        self.caught_up = asyncio.Event()
        self.committed = False  # whether this pass over the log committed a batch (resets the backoff)

    async def run(self) -> None:
        failures = 0
        while True:
            self.committed = False
            try:
                await self._follow()
            except Exception as exc:
                RESTARTS.labels(self.projection.name).inc()
                failures = 1 if self.committed else failures + 1
                log.warning("projection restarts from its position", projection=self.projection.name,
                            error=repr(exc), exc_info=failures > 3)
                await asyncio.sleep(min(MAX_BACKOFF_S, 0.05 * 2**failures))

    async def _follow(self) -> None:
        """Fold from the committed position + 1 until something fails (it raises)."""
        async with self.pool.acquire() as conn:
            start = await position(conn, self.projection.name)
        sub = await self.js.pull_subscribe_bind(await self._ephemeral(start + 1), stream=subjects.EVENTS_STREAM)
        delivered = 0
        try:
            while True:
                msgs = await pull(sub, self.batch, 1.0)
                if not msgs:  # nothing new within the wait
                    PENDING.labels(self.projection.name).set(0)
                    self.caught_up.set()
                    continue
                delivered = self._in_order(msgs, delivered)
                await self._fold(msgs)
                PENDING.labels(self.projection.name).set(msgs[-1].metadata.num_pending)
                if msgs[-1].metadata.num_pending == 0:
                    self.caught_up.set()
                if self.linger_s and len(msgs) < self.batch:
                    await asyncio.sleep(self.linger_s)
        finally:
            await self._drop(sub)

    async def _ephemeral(self, start: int) -> str:
        """An in-memory consumer without acks from `start`; the server removes it if this process goes away."""
        info = await self.js.add_consumer(
            subjects.EVENTS_STREAM,
            ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                ack_policy=AckPolicy.NONE,
                filter_subjects=list(self.projection.filter_subjects),
                inactive_threshold=30.0,
                mem_storage=True,
                num_replicas=1,
            ),
        )
        assert info.name is not None
        return info.name

    async def _drop(self, sub: JetStreamContext.PullSubscription) -> None:
        with contextlib.suppress(Exception):
            info = await sub.consumer_info()
            await sub.unsubscribe()
            await self.js.delete_consumer(subjects.EVENTS_STREAM, info.name)

    @staticmethod
    def _in_order(msgs: list[Msg], delivered: int) -> int:
        """Without acks nothing is redelivered, so a lost fetch response is a gap: each delivery must be the
        consumer's next one. Returns the last delivery's number."""
        for msg in msgs:
            if msg.metadata.sequence.consumer != delivered + 1:
                raise Gap(f"delivery {msg.metadata.sequence.consumer} after {delivered}")
            delivered += 1
        return delivered

    async def _fold(self, msgs: list[Msg]) -> None:
        by_seq = {msg.metadata.sequence.stream: msg for msg in msgs}
        batch: list[tuple[int, Event]] = []
        for seq, msg in by_seq.items():
            try:
                event = decode_or_pass(msg.data, self.projection.name)
                if type(event) is not Event:  # a type this version does not know is passed (counted)
                    batch.append((seq, event))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await park(self.js, self.projection.name, seq, msg.subject, msg.data, exc)

        async def parked(seq: int, exc: BaseException) -> None:
            await park(self.js, self.projection.name, seq, by_seq[seq].subject, by_seq[seq].data, exc)

        through = msgs[-1].metadata.sequence.stream
        try:  # the usual case in one transaction, without fold_or_park's savepoint
            async with self.pool.acquire() as conn, conn.transaction():
                folded = await fold_batch(conn, self.projection, batch, through=through)
        except Exception as exc:
            if not permanent(exc):
                raise
            async with self.pool.acquire() as conn, conn.transaction():
                folded = await fold_or_park(conn, self.projection, batch, parked, through=through)
        self.committed = True
        if folded and self.on_commit is not None:
            self.on_commit.set()


async def rebuild(js: JetStreamContext, conn: asyncpg.Connection, projection: Projection, schema: str,
                  archive: Archive | None = None) -> int:
    """Fold the log into `schema`, from sequence 1 (its tables exist and are empty) or from the position its tables
    hold (a snapshot restored into it); with an archive, the events the stream no longer holds are read there."""
    check_schema(schema)
    folded = 0
    batch: list[tuple[int, Event]] = []
    async with conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {schema}, public")
        start = await position(conn, projection.name) + 1
        for subject in projection.filter_subjects:
            async for seq, data in read_log(js, archive, subject, start):
                if (item := decode(projection.name, seq, data)) is not None:
                    batch.append(item)
        batch.sort(key=lambda item: item[0])
        for start in range(0, len(batch), 1000):
            folded += await fold_or_park(conn, projection, batch[start : start + 1000], _skipped(projection.name))
    return folded


def _skipped(projection: str) -> Park:
    """A rebuild passes what the live projection parked (it does not park it again)."""

    async def skip(seq: int, exc: BaseException) -> None:
        log.warning("rebuild skips an event it cannot apply", projection=projection, seq=seq, error=describe(exc))

    return skip
