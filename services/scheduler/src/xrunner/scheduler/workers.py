"""The live workers, from the `xr_workers` KV bucket: a heartbeat older than the lease means the worker is gone."""

from __future__ import annotations

import asyncio
import time

from nats.js import JetStreamContext

from xrunner.contracts import codec, subjects
from xrunner.contracts.messages import WorkerHeartbeat


class Workers:
    def __init__(self, js: JetStreamContext, changed: asyncio.Event, lease_s: float) -> None:
        self.js, self.changed, self.lease_s = js, changed, lease_s
        self._seen: dict[str, tuple[float, WorkerHeartbeat]] = {}

    def live(self) -> list[WorkerHeartbeat]:
        horizon = time.monotonic() - self.lease_s
        return [hb for at, hb in self._seen.values() if at >= horizon]

    async def watch(self) -> None:
        kv = await self.js.key_value(subjects.WORKERS_BUCKET)
        watcher = await kv.watchall()
        async for entry in watcher:
            if entry is None or entry.key is None:
                continue
            if entry.value:
                hb = codec.decode(entry.value, WorkerHeartbeat)
                before = self._seen.get(entry.key)
                self._seen[entry.key] = (time.monotonic(), hb)
                if before is None or before[1].slots != hb.slots or before[1].draining != hb.draining:
                    self.changed.set()
            else:
                self._seen.pop(entry.key, None)
                self.changed.set()
