"""The two pushed streams: a tenant's job events (resumable by stream sequence) and one job's log (resumable by
byte offset), as Server-Sent Events with keep-alive pings, ending when the credential expires."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import structlog
from litestar.response import ServerSentEventMessage
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from xrunner.contracts import codec, lifecycle, subjects
from xrunner.contracts.messages import LogChunk
from xrunner.realtime.hub import CLIENTS, DELIVERY_LAG, Client, Frame, Hub, frame
from xrunner.realtime.terminal import SafeText
from xrunner.servicekit import tracing
from xrunner.servicekit.attemptlog import AttemptLog
from xrunner.servicekit.eventstore import EventStore, read_entries

log = structlog.get_logger()


@dataclass(frozen=True)
class EventFilter:
    jobs: frozenset[str]
    types: frozenset[str]

    def keeps(self, item: Frame) -> bool:
        return (not self.jobs or item.job_id in self.jobs) and (not self.types or item.type in self.types)


class Encoded(ServerSentEventMessage):
    """Messages already in wire form: litestar writes `encode()` as is, so an event framed once at fan-out is
    shared by every client instead of being formatted per client."""

    def __init__(self, wire: bytes) -> None:  # the dataclass fields keep their class-level defaults
        self.wire = wire

    def encode(self) -> bytes:
        return self.wire


PING = Encoded(b": ping\r\n\r\n")
LOG_CLIENTS = CLIENTS.labels(stream="logs")


async def job_events(js: JetStreamContext, hub: Hub, tenant: str, since: int | None, keep: EventFilter,
                     expires_at: float, ping_s: float, announce: bool = False) -> AsyncIterator[ServerSentEventMessage]:
    """Events after `since` (from the log), then live; each exactly once, in order. `announce` first sends
    `since` as a `position` message's id (the point a reconnect resumes from)."""
    client = await hub.join(tenant)  # join first: whatever is stored after this arrives live
    try:
        last = since or 0
        if announce:
            yield ServerSentEventMessage(event="position", id=last, data=str(last))
        if since is not None:
            async for seq, subject, data in read_entries(js, subjects.EVENTS_STREAM, subjects.job_events(tenant),
                                                         since + 1):
                last, item = seq, frame(seq, subject, data)
                if keep.keeps(item):
                    yield Encoded(item.wire)
        async for message in _live(client, last, keep, expires_at, ping_s):
            yield message
    finally:
        await hub.leave(tenant, client)


async def _live(client: Client, last: int, keep: EventFilter, expires_at: float,
                ping_s: float) -> AsyncIterator[ServerSentEventMessage]:
    """Whatever waits for the client goes out in one write; its lag is observed as it is written."""
    while True:
        if client.overflowed:
            yield ServerSentEventMessage(event="resync", id=last, data="you fell behind; reconnect with Last-Event-ID")
            return
        left = expires_at - time.time()
        if left <= 0:
            yield ServerSentEventMessage(event="expired", data="your credential expired; reconnect with a new one")
            return
        await client.wait(min(ping_s, left))
        frames = client.take()
        if not frames:
            if not client.overflowed:
                yield PING
            continue
        kept = [item for item in frames if item.seq > last and keep.keeps(item)]
        last = max(last, frames[-1].seq)
        if kept:
            now = time.time()
            for item in kept:
                DELIVERY_LAG.observe(now - item.committed)
            yield Encoded(kept[0].wire if len(kept) == 1 else b"".join(item.wire for item in kept))


async def job_log(js: JetStreamContext, tenant: str, job_id: str, offset: int, expires_at: float,
                  ping_s: float) -> AsyncIterator[ServerSentEventMessage]:
    """The current attempt's output from byte `offset`, then live, then `end`. Each message's id is the byte
    offset after it, so Last-Event-ID resumes exactly."""
    text = SafeText()
    LOG_CLIENTS.inc()
    try:
        async for piece in log_pieces(js, tenant, job_id, offset, expires_at, ping_s):
            if piece.kind == "output":
                yield ServerSentEventMessage(event=piece.stream, id=piece.offset, data=text.feed(piece.data))
            elif piece.kind == "ping":
                yield ServerSentEventMessage(comment="ping")
            elif piece.kind == "end":
                yield ServerSentEventMessage(event="end", id=piece.offset, data=text.feed(b"", final=True))
            else:
                yield ServerSentEventMessage(event="expired", data="your credential expired")
    finally:
        LOG_CLIENTS.dec()


@dataclass(frozen=True)
class LogPiece:
    """One step of reading a job's log: raw `output` of `stream` (`offset` is the byte offset after it), a `ping`
    while nothing came, its `end`, or `expired` (the reader's credential)."""

    kind: Literal["output", "ping", "end", "expired"]
    offset: int = 0
    stream: str = ""
    data: bytes = b""


async def log_pieces(js: JetStreamContext, tenant: str, job_id: str, offset: int, expires_at: float,
                     ping_s: float) -> AsyncIterator[LogPiece]:
    """The current attempt's raw output from byte `offset`, then live, then its end (SSE and attach share it)."""
    view = lifecycle.replay(await EventStore(js).history(tenant, job_id))
    if view is None:
        return
    cursor = AttemptLog(view.attempt, offset)
    queue: asyncio.Queue[Msg] = asyncio.Queue()
    sub = await js.subscribe(subjects.job_logs(tenant, job_id), cb=queue.put, ordered_consumer=True,
                             deliver_policy=DeliverPolicy.ALL, stream=subjects.LOGS_STREAM)
    try:
        while True:
            left = expires_at - time.time()
            if left <= 0:
                yield LogPiece("expired")
                return
            try:
                msg = await asyncio.wait_for(queue.get(), min(ping_s, left))
            except TimeoutError:
                if await _ended_without_output(js, tenant, job_id, view.attempt):
                    yield LogPiece("end", cursor.offset)
                    return
                yield LogPiece("ping")
                continue
            chunk = codec.decode(msg.data, LogChunk)
            if cursor.ends_with(chunk):
                with tracing.span(tracing.of(msg.headers)):  # the job's trace, as its worker published the chunk
                    log.info("job log sent to its end", job_id=job_id, attempt=chunk.attempt, offset=chunk.offset)
                yield LogPiece("end", chunk.offset)
                return
            output = cursor.take(chunk)
            if output is not None:
                yield LogPiece("output", output.end, output.stream, output.data)
    finally:  # to its end even when the reader went away and its request is being cancelled
        await asyncio.shield(sub.unsubscribe())


async def _ended_without_output(js: JetStreamContext, tenant: str, job_id: str, attempt: int) -> bool:
    """A job that ended before any output of this attempt was published (e.g. it never ran) has no `eof` chunk."""
    view = lifecycle.replay(await EventStore(js).history(tenant, job_id))
    return view is not None and lifecycle.is_terminal(view.state) and (view.attempt != attempt or
                                                                       view.started_at is None)
