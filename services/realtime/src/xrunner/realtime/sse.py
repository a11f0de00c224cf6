"""The two pushed streams: a tenant's job events (resumable by stream sequence) and one job's log (resumable by
byte offset), as Server-Sent Events with keep-alive pings, ending when the credential expires."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from litestar.response import ServerSentEventMessage
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from xrunner.contracts import codec, lifecycle, subjects
from xrunner.contracts.messages import LogChunk
from xrunner.realtime.hub import Client, Hub
from xrunner.realtime.terminal import SafeText
from xrunner.servicekit.eventstore import EventStore, read_entries


@dataclass(frozen=True)
class EventFilter:
    jobs: frozenset[str]
    types: frozenset[str]

    def keeps(self, subject: str) -> bool:
        _, _, _, _, job_id, token = subject.split(".")
        return (not self.jobs or job_id in self.jobs) and (not self.types or token in self.types)


def _event(seq: int, subject: str, data: bytes) -> ServerSentEventMessage:
    return ServerSentEventMessage(id=seq, event=subject.rsplit(".", 1)[-1], data=data.decode())


async def job_events(js: JetStreamContext, hub: Hub, tenant: str, since: int | None, keep: EventFilter,
                     expires_at: float, ping_s: float) -> AsyncIterator[ServerSentEventMessage]:
    """Events after `since` (from the log), then live; each exactly once, in order."""
    client = await hub.join(tenant)  # join first: whatever is stored after this arrives live
    try:
        last = since or 0
        if since is not None:
            async for seq, subject, data in read_entries(js, subjects.EVENTS_STREAM, subjects.job_events(tenant),
                                                         since + 1):
                last = seq
                if keep.keeps(subject):
                    yield _event(seq, subject, data)
        async for message in _live(client, last, keep, expires_at, ping_s):
            yield message
    finally:
        await hub.leave(tenant, client)


async def _live(client: Client, last: int, keep: EventFilter, expires_at: float,
                ping_s: float) -> AsyncIterator[ServerSentEventMessage]:
    while True:
        if client.overflowed.is_set():
            yield ServerSentEventMessage(event="resync", id=last, data="you fell behind; reconnect with Last-Event-ID")
            return
        left = expires_at - time.time()
        if left <= 0:
            yield ServerSentEventMessage(event="expired", data="your credential expired; reconnect with a new one")
            return
        try:
            seq, subject, data = await asyncio.wait_for(client.queue.get(), min(ping_s, left))
        except TimeoutError:
            yield ServerSentEventMessage(comment="ping")
            continue
        if seq > last:
            last = seq
            if keep.keeps(subject):
                yield _event(seq, subject, data)


async def job_log(js: JetStreamContext, tenant: str, job_id: str, offset: int, expires_at: float,
                  ping_s: float) -> AsyncIterator[ServerSentEventMessage]:
    """The current attempt's output from byte `offset`, then live, then `end`. Each message's id is the byte
    offset after it, so Last-Event-ID resumes exactly."""
    view = lifecycle.replay(await EventStore(js).history(tenant, job_id))
    if view is None:
        return
    queue: asyncio.Queue[Msg] = asyncio.Queue()
    sub = await js.subscribe(subjects.job_logs(tenant, job_id), cb=queue.put, ordered_consumer=True,
                             deliver_policy=DeliverPolicy.ALL, stream=subjects.LOGS_STREAM)
    text = SafeText()
    try:
        while True:
            left = expires_at - time.time()
            if left <= 0:
                yield ServerSentEventMessage(event="expired", data="your credential expired")
                return
            try:
                msg = await asyncio.wait_for(queue.get(), min(ping_s, left))
            except TimeoutError:
                if await _ended_without_output(js, tenant, job_id, view.attempt):
                    yield ServerSentEventMessage(event="end", id=offset, data="")
                    return
                yield ServerSentEventMessage(comment="ping")
                continue
            chunk = codec.decode(msg.data, LogChunk)
            if chunk.attempt != view.attempt:
                continue
            if chunk.eof:
                yield ServerSentEventMessage(event="end", id=chunk.offset, data=text.feed(b"", final=True))
                return
            end = chunk.offset + len(chunk.data)
            if end <= offset:
                continue
            piece = chunk.data[max(0, offset - chunk.offset):]
            offset = end
            yield ServerSentEventMessage(event=chunk.stream, id=end, data=text.feed(piece))
    finally:
        await sub.unsubscribe()


async def _ended_without_output(js: JetStreamContext, tenant: str, job_id: str, attempt: int) -> bool:
    """A job that ended before any output of this attempt was published (e.g. it never ran) has no `eof` chunk."""
    view = lifecycle.replay(await EventStore(js).history(tenant, job_id))
    return view is not None and lifecycle.is_terminal(view.state) and (view.attempt != attempt or
                                                                       view.started_at is None)
