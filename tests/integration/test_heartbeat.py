"""The worker's heartbeat renews its lease from a thread of its own: a worker whose event loop is busy (starting or
stopping hundreds of sandboxes at once) keeps its lease, so the reaper does not kill its healthy jobs."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from nats.js import JetStreamContext
from support import wait_until

from xrunner.contracts import codec, subjects
from xrunner.contracts.messages import WorkerHeartbeat
from xrunner.servicekit.ids import new_id
from xrunner.worker.beat import Heartbeat


def snapshot(worker_id: str) -> WorkerHeartbeat:
    return WorkerHeartbeat(worker_id=worker_id, pool="default", slots=4, free_slots=4, cpu_millis=2000,
                           memory_mib=1024, gpu=0, running=[], version="test", sandbox="none", workloads=["process"],
                           draining=False, at=datetime.now(UTC))


async def test_the_lease_is_renewed_while_the_workers_loop_is_blocked(js: JetStreamContext, nats_url: str) -> None:
    worker_id, renewals, after = f"w-{new_id().lower()}", list[float](), list[float]()
    beat = Heartbeat(nats_url, worker_id, 0.1, lambda: snapshot(worker_id), renewals.append,
                     lambda: after.append(time.monotonic()))
    await beat.start()
    try:
        await wait_until(lambda: len(after) >= 1, timeout=10, what="a first beat seen on this loop")
        blocked_at = time.monotonic()
        time.sleep(1.5)  # noqa: ASYNC251 -- the scenario, not a wait: this loop runs nothing for 1.5 s (busy spawning)
        during = [t for t in renewals if t > blocked_at]
        assert len(during) >= 3, f"only {len(during)} renewals while the loop was blocked (one per 0.1 s expected)"
        entry = await (await js.key_value(subjects.WORKERS_BUCKET)).get(worker_id)
        assert entry.value is not None and codec.decode(entry.value, WorkerHeartbeat).worker_id == worker_id
        await wait_until(lambda: any(t > blocked_at + 1.5 for t in after), timeout=10,
                         what="the beats' follow-up run on this loop once it is free")
    finally:
        await asyncio.to_thread(beat.stop)
    assert beat._thread is not None and not beat._thread.is_alive(), "no beat can follow stop()"
