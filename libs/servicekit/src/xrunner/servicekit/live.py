"""Follows some subjects of the log from now on, as the stream stores them: an ordered push consumer (in memory, no
acks; nats-py recreates it after a gap or a missed heartbeat) whose messages go to a callback with their stream
sequence. It is for acting on an event the moment it is stored (an admission decision, the answer a submit waits
for); it may miss events while it is recreated, so whatever must see every event folds a projection too."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from xrunner.contracts import subjects

Handler = Callable[[int, Msg], None]


class LiveFeed:
    """`handle(seq, msg)` for each event stored on `filter_subjects` after `start()`."""

    def __init__(self, js: JetStreamContext, filter_subjects: Sequence[str], handle: Handler) -> None:
        self.js, self.filter_subjects, self.handle = js, list(filter_subjects), handle
        self.floor = 0  # the log's last sequence at the start: a consumer recreated from scratch replays nothing
        self._sub: JetStreamContext.PushSubscription | None = None

    @property
    def started(self) -> bool:
        return self._sub is not None

    async def start(self) -> None:
        info = await self.js.stream_info(subjects.EVENTS_STREAM)
        self.floor = info.state.last_seq
        config = ConsumerConfig(filter_subjects=self.filter_subjects)
        self._sub = await self.js.subscribe("", cb=self._on_msg, ordered_consumer=True, config=config,
                                            deliver_policy=DeliverPolicy.NEW, stream=subjects.EVENTS_STREAM)

    async def _on_msg(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq > self.floor:
            self.handle(seq, msg)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
