"""Fans one tenant's job events out to every connected client of this process: one ordered JetStream consumer per
tenant (not one per client), each event framed as Server-Sent Event bytes once and those bytes shared by every
client, bounded per-client buffers, and a slow client is told to resync and dropped — it never slows the others."""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from xrunner.contracts import subjects

log = structlog.get_logger()

CLIENTS = Gauge("xrunner_realtime_clients", "Connected stream clients", ["stream"])
EVENT_CLIENTS = CLIENTS.labels(stream="events")
DELIVERED = Counter("xrunner_realtime_events_delivered_total", "Events put into client buffers")
DROPPED = Counter("xrunner_realtime_slow_clients_dropped_total", "Clients dropped for not keeping up")
WAIT_PER_CLIENT_S, WAIT_MAX_S = 20e-6, 0.025  # how long an event waits for company: see TenantFeed
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LoopHistogram:
    """A Prometheus histogram that only the event loop's thread observes and collects (/metrics is served on the
    loop), so it needs no lock per observation, unlike prometheus_client's: it is observed per event and client."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self.name, self.documentation, self.buckets = name, documentation, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        REGISTRY.register(self)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation)
        bounds = [*map(floatToGoString, self.buckets), "+Inf"]
        family.add_metric([], list(zip(bounds, accumulate(self.counts), strict=True)), self.sum)
        yield family


# Lag is measured from the event's commit (its JetStream timestamp): before that it is not a fact anyone can read.
FANOUT_LAG = Histogram("xrunner_realtime_fanout_lag_seconds", "Event committed → in every client's buffer, once per "
                       "event", buckets=LAG_BUCKETS)
DELIVERY_LAG = LoopHistogram("xrunner_realtime_delivery_lag_seconds", "Event committed → written to a client's "
                             "connection, once per event and client", LAG_BUCKETS)


@dataclass(frozen=True, slots=True)
class Frame:
    """One job event as every client receives it: the SSE bytes, built once, and what filters look at."""

    seq: int
    job_id: str
    type: str  # the subject's last token: `succeeded`, `queued`, ...
    wire: bytes
    committed: float = 0.0  # its JetStream timestamp (s since the epoch); 0 when read back from the log


def frame(seq: int, subject: str, data: bytes, committed: float = 0.0) -> Frame:
    """The event on `subject` at stream sequence `seq` as an SSE message whose `id:` is the sequence."""
    _, job_id, token = subjects.parse_job_event(subject)
    lines = b"".join(b"data: %s\r\n" % line for line in data.splitlines() or [b""])
    return Frame(seq, job_id, token, b"id: %d\r\nevent: %s\r\n%s\r\n" % (seq, token.encode(), lines), committed)


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Client:
    """One connected stream: the frames waiting for it (at most `limit`) and whether it fell behind."""

    __slots__ = ("_deadline", "_timer", "_waiter", "frames", "limit", "overflowed")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.frames: list[Frame] = []
        self.overflowed = False
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0

    def offer(self, items: list[Frame]) -> bool:
        """Buffer `items`; False when they do not all fit, and the client is then behind for good."""
        room = self.limit - len(self.frames)
        accepted = len(items) <= room
        self.frames.extend(items if accepted else items[:room])
        if not accepted:
            self.overflowed = True
        if self._waiter is not None:
            _release(self._waiter)
        return accepted

    def take(self) -> list[Frame]:
        """Everything waiting, oldest first (one write for a burst, not one per event)."""
        frames, self.frames = self.frames, []
        return frames

    async def wait(self, timeout: float) -> None:
        """Until a frame is waiting, the client overflowed, or `timeout` passed. A busy client waits once per
        write, and a timer per wait would cost a third of the write: one timer is moved on when it fires early
        and armed anew only when the deadline comes sooner."""
        if self.frames or self.overflowed:
            return
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout
        if self._timer is None or self._timer.when() > self._deadline:
            self.close()
            self._timer = loop.call_at(self._deadline, self._on_timer)
        waiter = self._waiter = loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _on_timer(self) -> None:
        assert self._timer is not None
        if self._deadline - self._timer.when() > 0.005:
            self._timer = asyncio.get_running_loop().call_at(self._deadline, self._on_timer)
            return
        self._timer = None
        if self._waiter is not None:
            _release(self._waiter)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class TenantFeed:
    """The tenant's live events (from the moment the feed started) for every client of this process.

    Writes are what fan-out costs (one per client per hand-out, ~20-35 µs each here), and a job's few events come
    milliseconds apart: so an event waits for company before it is handed out, about as long as a hand-out to that
    many clients takes (20 µs a client, at most 25 ms), and clients then get one write for several events."""

    def __init__(self, js: JetStreamContext, tenant: str) -> None:
        self.js, self.tenant = js, tenant
        self.clients: set[Client] = set()
        self.position = 0  # the last sequence handed to clients
        self._sub: JetStreamContext.PushSubscription | None = None
        self._pending: list[Frame] = []
        self._hand_out_at: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._sub = await self.js.subscribe(subjects.job_events(self.tenant, "*", "*"), cb=self._on_msg,
                                            ordered_consumer=True, deliver_policy=DeliverPolicy.NEW,
                                            stream=subjects.EVENTS_STREAM)

    async def _on_msg(self, msg: Msg) -> None:
        meta = msg.metadata
        self.position = max(self.position, meta.sequence.stream)
        self._pending.append(frame(meta.sequence.stream, msg.subject, msg.data, meta.timestamp.timestamp()))
        if self._hand_out_at is None:
            wait = min(WAIT_MAX_S, len(self.clients) * WAIT_PER_CLIENT_S)
            self._hand_out_at = asyncio.get_running_loop().call_later(wait, self._hand_out)

    def _hand_out(self) -> None:
        self._hand_out_at = None
        items, self._pending = self._pending, []
        slow = [client for client in self.clients if not client.offer(items)]
        self.clients.difference_update(slow)
        DELIVERED.inc(len(self.clients) * len(items))
        if slow:
            DROPPED.inc(len(slow))
        now = time.time()
        for item in items:
            FANOUT_LAG.observe(now - item.committed)

    async def stop(self) -> None:
        if self._hand_out_at is not None:
            self._hand_out_at.cancel()
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
        """A new client of the tenant's feed, started first if need be. Only a started feed is registered: a start
        that fails, or is cancelled because its client went away, leaves no feed without a subscription behind
        for the next clients to join (they would wait for events that never come)."""
        async with self._lock:
            feed = self.feeds.get(tenant)
            if feed is None:
                feed = TenantFeed(self.js, tenant)
                try:
                    await feed.start()
                except BaseException:
                    await asyncio.shield(feed.stop())
                    raise
                self.feeds[tenant] = feed
            client = Client(self.buffer)
            feed.clients.add(client)
        EVENT_CLIENTS.inc()
        return client

    async def leave(self, tenant: str, client: Client) -> None:
        """Runs to its end even when the caller is cancelled (a client that vanished cancels its request, over and
        over under anyio): a feed half stopped would keep a consumer, or lose one another client still needs."""
        await asyncio.shield(self._leave(tenant, client))

    async def _leave(self, tenant: str, client: Client) -> None:
        EVENT_CLIENTS.dec()
        client.close()
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
