"""The live workers, from the `xr_workers` KV bucket: a worker not heard from for `lease_s` (the scheduler's
lease + fence margin) is gone. Times are when a heartbeat arrived here, never before the worker sent it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime

import nats.errors
from nats.js import JetStreamContext
from prometheus_client import Counter

from xrunner.contracts import codec, subjects
from xrunner.contracts.messages import WorkerHeartbeat

BUCKET_CHECK_S = 1.0
SILENT = Counter("xrunner_workers_lost_total", "Workers whose heartbeats stopped for longer than the lease", ["pool"])


class Workers:
    def __init__(self, js: JetStreamContext, changed: asyncio.Event, lease_s: float) -> None:
        self.js, self.changed, self.lease_s = js, changed, lease_s
        self._seen: dict[str, tuple[float, WorkerHeartbeat]] = {}

    def live(self) -> list[WorkerHeartbeat]:
        """The workers heard from within the lease; one silent for longer is forgotten (and counted) until it
        beats again. A worker that stops cleanly deletes its key and is not counted."""
        horizon = time.monotonic() - self.lease_s
        for key in [key for key, (at, _) in self._seen.items() if at < horizon]:
            SILENT.labels(self._seen.pop(key)[1].pool).inc()
        return [hb for _, hb in self._seen.values()]

    async def watch(self) -> None:
        """Follow the bucket, and start over when it was re-created: a restarted nats-server loses memory
        buckets, and a watcher resuming by sequence would wait for sequences the new bucket has not reached."""
        while True:
            created = await self._bucket_created()
            follow = asyncio.create_task(self._follow())
            try:
                while not follow.done() and await self._bucket_created() in (created, None):
                    await asyncio.sleep(BUCKET_CHECK_S)
                if follow.done():
                    follow.result()
            finally:
                follow.cancel()

    async def _bucket_created(self) -> datetime | None:
        try:
            return (await self.js.stream_info(f"KV_{subjects.WORKERS_BUCKET}")).created
        except (nats.errors.Error, TimeoutError):  # NATS restarting, or the bucket not declared again yet
            return None

    async def _follow(self) -> None:
        kv = await self.js.key_value(subjects.WORKERS_BUCKET)
        watcher = await kv.watchall()
        try:
            async for entry in watcher:
                if entry is not None and entry.key is not None:
                    self._note(entry.key, entry.value)
        finally:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _note(self, key: str, value: bytes | None) -> None:
        if value:
            hb = codec.decode(value, WorkerHeartbeat)
            before = self._seen.get(key)
            self._seen[key] = (time.monotonic(), hb)
            if before is None or before[1].slots != hb.slots or before[1].draining != hb.draining:
                self.changed.set()
        else:
            self._seen.pop(key, None)
            self.changed.set()
