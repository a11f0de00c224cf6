"""Fans one tenant's job events out to every connected client of this process: one ordered JetStream consumer per
tenant (not one per client), bounded per-client buffers, and a slow client is told to resync and dropped — it never
slows the others."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from prometheus_client import Counter, Gauge

from xrunner.contracts import subjects

log = structlog.get_logger()

CLIENTS = Gauge("xrunner_realtime_clients", "Connected SSE clients")
DELIVERED = Counter("xrunner_realtime_events_delivered_total", "Events put into client buffers")
DROPPED = Counter("xrunner_realtime_slow_clients_dropped_total", "Clients dropped for not keeping up")


@dataclass(eq=False)
class Client:
    """One connected stream: its buffer of (sequence, subject, raw event) and whether it fell behind."""

    queue: asyncio.Queue[tuple[int, str, bytes]]
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, item: tuple[int, str, bytes]) -> bool:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed.set()
            return False
        return True


class TenantFeed:
    """The tenant's live events (from the moment the feed started) for every client of this process."""

    def __init__(self, js: JetStreamContext, tenant: str) -> None:
        self.js, self.tenant = js, tenant
        self.clients: set[Client] = set()
        self.position = 0  # the last sequence handed to clients
        self._sub: JetStreamContext.PushSubscription | None = None

    async def start(self) -> None:
        self._sub = await self.js.subscribe(subjects.job_events(self.tenant, "*", "*"), cb=self._on_msg,
                                            ordered_consumer=True, deliver_policy=DeliverPolicy.NEW,
                                            stream=subjects.EVENTS_STREAM)

    async def _on_msg(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        self.position = max(self.position, seq)
        item = (seq, msg.subject, msg.data)
        for client in list(self.clients):
            if client.offer(item):
                DELIVERED.inc()
            else:
                DROPPED.inc()
                self.clients.discard(client)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


class Hub:
    """Feeds per tenant, started on a tenant's first client and stopped with its last."""

    def __init__(self, js: JetStreamContext, buffer: int) -> None:
        self.js, self.buffer = js, buffer
        self.feeds: dict[str, TenantFeed] = {}
        self._lock = asyncio.Lock()

    async def join(self, tenant: str) -> Client:
        async with self._lock:
            feed = self.feeds.get(tenant)
            if feed is None:
                feed = self.feeds[tenant] = TenantFeed(self.js, tenant)
                await feed.start()
        client = Client(asyncio.Queue(self.buffer))
        feed.clients.add(client)
        CLIENTS.inc()
        return client

    async def leave(self, tenant: str, client: Client) -> None:
        CLIENTS.dec()
        async with self._lock:
            feed = self.feeds.get(tenant)
            if feed is None:
                return
            feed.clients.discard(client)
            if not feed.clients:
                del self.feeds[tenant]
                await feed.stop()

    def connections(self, tenant: str) -> int:
        feed = self.feeds.get(tenant)
        return len(feed.clients) if feed else 0
