"""Ends the jobs whose events a projection parked: for each dead letter in `XR_DEAD`, the active scheduler appends
`job.failed` (abandoned, with the projection's error as the reason) unless the job already ended.

Its cursor is the `scheduler.dead_letters` row of the scheduler's position table, advanced after each letter is
handled; it follows `xr.dead.>` from there with an ordered consumer. Handling a letter twice is harmless: the job
has ended by then, and the append is deduplicated and compare-and-set on the job's history.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import msgspec
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from xrunner.contracts import codec, lifecycle, subjects
from xrunner.contracts import events as ev
from xrunner.contracts.api import JobView
from xrunner.scheduler.state import SchedulerState
from xrunner.servicekit.deadletter import PERMANENT_ERRORS, DeadLetter, printable
from xrunner.servicekit.eventstore import ConflictError, EventStore, read_raw
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.projector import advance, position

log = structlog.get_logger()

CURSOR = "scheduler.dead_letters"
MAX_BACKOFF_S = 5.0
CONFLICT_RETRIES = 10
History = list[tuple[int, ev.Event]]


def _replay(history: History) -> JobView | None:
    """The job's view, or None when there is none or the fold itself cannot take these events."""
    try:
        return lifecycle.replay(history)
    except PERMANENT_ERRORS:
        return None


def abandonment(history: History, letter: DeadLetter, now: datetime, event_id: str) -> ev.JobFailed | None:
    """The `job.failed` that ends the letter's job, or None when it has ended (or never existed). The job is judged
    as the projections that parked the event see it: its history without that event (with it, when the event is
    the submission itself). Pure."""
    view = _replay([(seq, e) for seq, e in history if seq != letter.seq]) or _replay(history)
    if view is None or lifecycle.is_terminal(view.state):
        return None
    reason = printable(f"an event of this job could not be applied by {letter.projection}: {letter.error}")
    return ev.JobFailed(event_id=event_id, occurred_at=now, tenant=view.tenant, job_id=view.id,
                        attempt=view.attempt, reason=reason, final=True, abandoned=True)


async def history(js: JetStreamContext, tenant: str, job_id: str) -> tuple[History, int]:
    """The job's decodable events and the sequence of its last event, decodable or not (what an append compares
    against)."""
    events: History = []
    last = 0
    async for seq, data in read_raw(js, subjects.EVENTS_STREAM, subjects.job_history(tenant, job_id)):
        last = seq
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            events.append((seq, codec.decode_event(data)))
    return events, last


class DeadLetters:
    """Follows `xr.dead.>` from its committed position while this scheduler is active."""

    def __init__(self, js: JetStreamContext, pool: asyncpg.Pool, state: SchedulerState, wake: asyncio.Event,
                 ids: Callable[[], str] = new_id) -> None:
        self.js, self.pool, self.state, self.wake, self.ids = js, pool, state, wake, ids
        self.store = EventStore(js)

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self._follow()
            except Exception as exc:
                failures += 1
                log.warning("dead-letter consumer restarts from its position", error=repr(exc))
                await asyncio.sleep(min(MAX_BACKOFF_S, 0.05 * 2**failures))

    async def _follow(self) -> None:
        async with self.pool.acquire() as conn:
            start = await position(conn, CURSOR)
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start + 1)
        sub = await self.js.subscribe(subjects.DEAD_ALL, cb=queue.put, ordered_consumer=True, config=config,
                                      stream=subjects.DEAD_STREAM)
        try:
            while True:
                msg = await queue.get()
                await self.handle(msg)
                async with self.pool.acquire() as conn:
                    await advance(conn, CURSOR, msg.metadata.sequence.stream)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def handle(self, msg: Msg) -> None:
        """End the letter's job (a letter without our headers, or for an event that is not a job's, is passed)."""
        try:
            letter = DeadLetter.from_headers(msg.headers or {})
            tenant, job_id, _ = subjects.parse_job_event(letter.subject)
        except (KeyError, ValueError) as exc:
            log.warning("dead letter passed", subject=msg.subject, error=repr(exc))
            return
        for _ in range(CONFLICT_RETRIES):
            events, last = await history(self.js, tenant, job_id)
            failed = abandonment(events, letter, datetime.now(UTC), self.ids())
            if failed is None:
                return
            try:
                appended = await self.store.append(failed, msg_id=f"{job_id}:{failed.attempt}:abandoned",
                                                   expect=last)
            except ConflictError:
                continue
            log.error("job abandoned: an event of it could not be applied", tenant=tenant, job_id=job_id,
                      projection=letter.projection, seq=letter.seq, reason=failed.reason)
            self.state.apply(appended.seq, failed)
            self.wake.set()
            return
        raise ConflictError(f"job {job_id} kept changing while it was abandoned")
