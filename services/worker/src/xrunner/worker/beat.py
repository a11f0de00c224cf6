"""The worker's heartbeat on a thread of its own, with its own event loop and NATS connection: the lease is renewed
every `heartbeat_s` whatever the worker's loop is doing.

On the worker's loop, a heartbeat waited behind everything else there: starting or stopping hundreds of sandboxes
at once kept that loop busy for seconds, no heartbeat was stored for longer than the fence, and the reaper killed
the worker's own healthy jobs (docs/worker.md, "Lease"). A thread still needs the GIL, which the busy loop gives up
every few milliseconds (`sys.getswitchinterval()`), so a beat is late by milliseconds, not seconds.

What the thread touches of the worker is read-only or thread-safe: the heartbeat's snapshot (plain reads), the
lease's renewal (a float, and a write to the reaper's pipe), and `after`, which is called on the worker's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable

import nats.errors
import structlog
from nats.js.kv import KeyValue

from xrunner.contracts import codec, subjects
from xrunner.contracts.messages import WorkerHeartbeat
from xrunner.servicekit import streams

log = structlog.get_logger()


class Heartbeat:
    """`await start()` connects the thread (raising if it cannot) and beats from then on; `stop()` returns once no
    more heartbeat can be stored. Each stored beat calls `renewed(sent_at)` (on the thread) and each beat, stored
    or not, schedules `after()` on the loop that started it."""

    def __init__(
        self,
        nats_url: str,
        worker_id: str,
        every_s: float,
        snapshot: Callable[[], WorkerHeartbeat],
        renewed: Callable[[float], None],
        after: Callable[[], None],
    ) -> None:
        self.nats_url, self.worker_id, self.every_s = nats_url, worker_id, every_s
        self.snapshot, self.renewed, self.after = snapshot, renewed, after
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the thread's
        self._stopping: asyncio.Event | None = None

    async def start(self) -> None:
        owner = asyncio.get_running_loop()
        connected: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run(owner, connected)), name="heartbeat",
                                        daemon=True)
        self._thread.start()
        await asyncio.wrap_future(connected)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Blocks until the thread ended (at most `timeout_s`: a beat in flight is waited for)."""
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the thread's loop already closed
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout_s)

    async def _run(self, owner: asyncio.AbstractEventLoop, connected: concurrent.futures.Future[None]) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        try:
            nc = await streams.connect(self.nats_url, f"xrunner-worker-{self.worker_id}-heartbeat")
        except BaseException as exc:
            connected.set_exception(exc)
            return
        connected.set_result(None)
        js = nc.jetstream(timeout=max(1.0, self.every_s * 2))
        kv: KeyValue | None = None
        try:
            while not self._stopping.is_set():
                sent_at = time.monotonic()
                try:
                    kv = kv or await js.key_value(subjects.WORKERS_BUCKET)
                    await kv.put(self.worker_id, codec.encode(self.snapshot()))
                    self.renewed(sent_at)
                except (nats.errors.Error, TimeoutError) as exc:  # NATS is restarting: the next beat tries again
                    log.warning("heartbeat not stored", error=repr(exc))
                with contextlib.suppress(RuntimeError):  # the worker's loop is closing
                    owner.call_soon_threadsafe(self.after)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), max(0.0, sent_at + self.every_s - time.monotonic()))
        finally:
            with contextlib.suppress(Exception):
                await nc.close()
