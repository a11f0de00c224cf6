"""Appends events to the log with dedupe and per-job compare-and-set, and reads histories back."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError, ServiceUnavailableError

from xrunner.contracts import codec, subjects
from xrunner.contracts.events import Event, JobEvent
from xrunner.servicekit import tracing
from xrunner.servicekit.consumer import UNKNOWN_EVENTS
from xrunner.servicekit.ids import new_id

WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a failed Nats-Expected-Last-Subject-Sequence
MAX_ATOMIC = 1000  # nats-server's limit on the messages of an atomic batch
# A stream leader's election takes seconds (nats-server's raft: a 4-9 s election timeout); appends retry past it.
APPEND_RETRY_S = 20.0
TRY_TIMEOUT_S = 5.0  # one publish waits this long for its ack before it is sent again (shorter: retries pile up
# on a loaded server)
RETRY_CAP_S = 0.5
# What the log could not take or answer for a passing reason: no leader while a JetStream cluster elects one, an
# ack or a direct get lost with a node, a connection being re-established. `publish` sends an append again for
# `retry_s`; a writer that must not give up (an attempt's outcome) retries these past that.
PASSING: tuple[type[Exception], ...] = (
    nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError, nats.errors.NoServersError, NoStreamResponseError,
    ServiceUnavailableError, TimeoutError,
)


class ConflictError(Exception):
    """The job's history moved on since the caller read it; re-read and decide again."""


@dataclass(frozen=True, slots=True)
class Appended:
    seq: int
    duplicate: bool


class EventStore:
    """The log `XR_EVENTS`: one writer per event type, one compare-and-set scope per job."""

    def __init__(self, js: JetStreamContext, retry_s: float = APPEND_RETRY_S) -> None:
        self.js, self.retry_s = js, retry_s

    async def append(self, event: Event, *, msg_id: str, expect: int | None = None) -> Appended:
        """Append `event` once (`msg_id` dedupes retries). With `expect`, only if the job's last event is at
        sequence `expect` (0: the job has no event yet); otherwise raise ConflictError.

        An append the stream could not take (no leader while a JetStream cluster elects one, a lost node's ack that
        never comes) is sent again for up to `retry_s` with the same message id. Without `expect` the server
        answers a retry of a stored append as its duplicate; with it, the server refuses the retry's stale expected
        sequence first, so a refusal is checked against the event stored after `expect`: if it is this very event
        (its event id), the append did happen."""
        headers = tracing.headers({"Nats-Msg-Id": msg_id})  # the job's trace, when one is current
        if expect is not None:
            if not isinstance(event, JobEvent):
                raise TypeError("compare-and-set is scoped to a job; pass a job event")
            headers["Nats-Expected-Last-Subject-Sequence"] = str(expect)
            headers["Nats-Expected-Last-Subject-Sequence-Subject"] = subjects.job_history(event.tenant, event.job_id)
        try:
            ack = await publish(self.js, subjects.event_subject(event), codec.encode(event),
                                stream=subjects.EVENTS_STREAM, headers=headers, retry_s=self.retry_s)
        except APIError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE:
                raise
            mine = await self._stored_after(event, expect) if isinstance(event, JobEvent) else None
            if mine is None:
                raise ConflictError(str(exc.description)) from exc
            return Appended(seq=mine, duplicate=False)
        return Appended(seq=ack.seq, duplicate=bool(ack.duplicate))

    async def _stored_after(self, event: JobEvent, expect: int | None) -> int | None:
        """The sequence of the job's event right after `expect` when it is `event` itself (an earlier try of this
        append was stored and its ack lost: the server checks the expected sequence before the message id), else
        None. The event id tells this call's event from another writer's with the same message id (a work item
        delivered twice appends the same `job.started` message id, and must stay fenced off)."""
        try:
            raw = await self.js.get_msg(subjects.EVENTS_STREAM, seq=(expect or 0) + 1, next=True, direct=True,
                                        subject=subjects.job_history(event.tenant, event.job_id))
            stored = codec.decode_event(raw.data or b"")
        except (NotFoundError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        return raw.seq if stored.event_id == event.event_id else None

    async def append_atomic(self, items: Sequence[tuple[JobEvent, str, int]]) -> list[Appended] | None:
        """Append job events `(event, msg_id, expect)` as one atomic batch: each compare-and-set on its own job's
        history and deduplicated by its message id like `append`, and all of them or none; returns their sequences
        in order (a batch is stored in one piece). None when the log refused the batch as a whole — a history
        moved, a message id it saw before (a retried request) — or did not answer: the caller appends them one by
        one, which tells which is which (an unanswered batch that was stored is found by its event ids)."""
        if not items or len(items) > MAX_ATOMIC:
            return None
        nc, batch = self.js._nc, new_id()  # a batch's messages are plain publishes; only its commit is answered
        try:
            for number, (event, msg_id, expect) in enumerate(items, start=1):
                headers = tracing.headers({
                    "Nats-Msg-Id": msg_id, "Nats-Batch-Id": batch, "Nats-Batch-Sequence": str(number),
                    "Nats-Expected-Last-Subject-Sequence": str(expect),
                    "Nats-Expected-Last-Subject-Sequence-Subject": subjects.job_history(event.tenant, event.job_id),
                })
                subject, data = subjects.event_subject(event), codec.encode(event)
                if number < len(items):
                    await nc.publish(subject, data, headers=headers)
                    continue
                headers["Nats-Batch-Commit"] = "1"
                reply = await nc.request(subject, data, headers=headers, timeout=TRY_TIMEOUT_S)
        except PASSING:
            return None
        ack = json.loads(reply.data)
        last = ack.get("seq") if isinstance(ack, dict) and "error" not in ack else None
        if not isinstance(last, int) or ack.get("count") != len(items):
            return None
        return [Appended(seq=last - len(items) + number, duplicate=False) for number in range(1, len(items) + 1)]

    async def history(self, tenant: str, job_id: str) -> list[tuple[int, Event]]:
        """Every event of one job, in order, with its stream sequence."""
        return [item async for item in self.read(subjects.job_history(tenant, job_id))]

    async def last_seq(self, tenant: str, job_id: str) -> int:
        """The sequence of the job's latest event (0 when it has none): what `expect` compares against."""
        history = await self.history(tenant, job_id)
        return history[-1][0] if history else 0

    async def read(self, subject: str, start_seq: int = 1) -> AsyncIterator[tuple[int, Event]]:
        """Events on `subject` (wildcards allowed) from `start_seq`, decoded; stops at the current end."""
        async for seq, data in read_raw(self.js, subjects.EVENTS_STREAM, subject, start_seq):
            yield seq, decode_or_pass(data, "history")


def decode_or_pass(data: bytes, consumer: str) -> Event:
    """The event in `data`; one of a type this version does not know comes back as a bare `Event` (counted), which
    every fold passes over while its sequence still counts for compare-and-set. Malformed data raises."""
    try:
        return codec.decode_event(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        unknown = codec.unknown_event(data)
        if unknown is None:
            raise
        UNKNOWN_EVENTS.labels(consumer, unknown[0]).inc()
        return unknown[1]


async def publish(
    js: JetStreamContext, subject: str, data: bytes, *, stream: str, headers: dict[str, str],
    retry_s: float = APPEND_RETRY_S,
) -> PubAck:
    """Publish to `stream` and wait for its ack; what the stream could not take for a passing reason (no leader
    while a JetStream cluster elects one, an ack lost with a node, a reconnect) is sent again, with the same headers
    (`Nats-Msg-Id` dedupes it), for up to `retry_s`. Other refusals raise at once."""
    deadline = time.monotonic() + retry_s
    for attempt in itertools.count():
        try:
            return await js.publish(subject, data, timeout=TRY_TIMEOUT_S, stream=stream, headers=dict(headers))
        except APIError as exc:
            if not isinstance(exc, ServiceUnavailableError) or time.monotonic() >= deadline:
                raise
        except (nats.errors.TimeoutError, NoStreamResponseError):
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(min(RETRY_CAP_S, 0.05 * 2**attempt))
    raise AssertionError("unreachable")


async def read_raw(
    js: JetStreamContext, stream: str, subject: str, start_seq: int = 1, batch: int = 512
) -> AsyncIterator[tuple[int, bytes]]:
    """Raw messages of `stream` on `subject` from `start_seq` up to the end as of now, in order."""
    async for seq, _, data in read_entries(js, stream, subject, start_seq, batch):
        yield seq, data


async def read_entries(
    js: JetStreamContext, stream: str, subject: str, start_seq: int = 1, batch: int = 512
) -> AsyncIterator[tuple[int, str, bytes]]:
    """(sequence, subject, data) of `stream` on `subject` from `start_seq` up to the end as of now, in order.

    Short histories (a job's) use direct gets; long reads go through an ephemeral consumer."""
    seq = max(start_seq, 1)
    for _ in range(16):
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True, direct=True)
        except NotFoundError:
            return
        assert msg.seq is not None
        yield msg.seq, msg.subject or subject, msg.data or b""
        seq = msg.seq + 1
    async for item in _read_with_consumer(js, stream, subject, seq, batch):
        yield item


async def _read_with_consumer(
    js: JetStreamContext, stream: str, subject: str, start_seq: int, batch: int
) -> AsyncIterator[tuple[int, str, bytes]]:
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start_seq,
        ack_policy=AckPolicy.NONE,
        filter_subject=subject,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    sub = await js.pull_subscribe(subject, durable=None, stream=stream, config=config)
    try:
        pending = (await sub.consumer_info()).num_pending or 0
        while pending > 0:
            msgs = await sub.fetch(min(batch, pending), timeout=5.0)
            for msg in msgs:
                yield msg.metadata.sequence.stream, msg.subject, msg.data
                pending = msg.metadata.num_pending or 0
    finally:
        await sub.unsubscribe()
