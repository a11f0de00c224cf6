"""The decisions a submit waits for, as the log stores them: one live feed per gateway on the events that end a
job's wait for admission (`job.queued`, `job.rejected`, `job.cancelled`), each handed to the request that awaits
that job. A waiter is registered before its submission is appended, so no decision can come before it; the event
arrives decoded from the stored message with its sequence, so nothing is read back."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from xrunner.contracts import codec, subjects
from xrunner.contracts.events import Event
from xrunner.servicekit.live import LiveFeed

FIRST_DECISIONS = ("queued", "rejected", "cancelled")
Decision = tuple[int, Event]


class Decisions:
    def __init__(self, js: JetStreamContext) -> None:
        self.feed = LiveFeed(js, [subjects.job_events(token=t) for t in FIRST_DECISIONS], self._stored)
        self.waiters: dict[str, asyncio.Future[Decision]] = {}
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:
            if not self.feed.started:
                await self.feed.start()

    async def stop(self) -> None:
        await self.feed.stop()

    async def expect(self, job_ids: list[str]) -> dict[str, asyncio.Future[Decision]]:
        """Register waiters for these jobs' first decisions (before their submissions are appended)."""
        if not self.feed.started:
            await self.start()
        loop = asyncio.get_running_loop()
        futures = {job_id: loop.create_future() for job_id in job_ids}
        self.waiters.update(futures)
        return futures

    def forget(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self.waiters.pop(job_id, None)

    async def wait(self, futures: dict[str, asyncio.Future[Decision]], timeout_s: float) -> dict[str, Decision]:
        """The decisions that came within `timeout_s`, by job id; the waiters are forgotten."""
        try:
            if futures:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*futures.values()), timeout_s)
            return {job_id: f.result() for job_id, f in futures.items() if f.done() and not f.cancelled()}
        finally:
            self.forget(list(futures))

    def _stored(self, seq: int, msg: Msg) -> None:
        _, job_id, _ = subjects.parse_job_event(msg.subject)
        future = self.waiters.pop(job_id, None)
        if future is None or future.done():
            return
        try:
            future.set_result((seq, codec.decode_event(msg.data)))
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.waiters[job_id] = future  # not a decision this gateway can read: the request reads the log
