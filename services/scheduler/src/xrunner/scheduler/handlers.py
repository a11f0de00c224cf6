"""The scheduler's I/O: the admission consumer, the dispatch loop and the workers' heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

import asyncpg
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge

from xrunner.contracts import codec, lifecycle, subjects
from xrunner.contracts.events import JobDispatched, JobQueued, JobRejected, JobSubmitted
from xrunner.contracts.messages import RunJob, WorkerHeartbeat
from xrunner.scheduler import admission, dispatch, store
from xrunner.scheduler.admission import Admitted
from xrunner.servicekit.consumer import consume, durable
from xrunner.servicekit.eventstore import ConflictError, EventStore
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.streams import WORKER_TTL_S

log = structlog.get_logger()

DISPATCHED = Counter("xrunner_jobs_dispatched_total", "Attempts released to a pool", ["pool"])
REJECTED = Counter("xrunner_jobs_rejected_total", "Submissions refused by admission", ["cause"])
WORKERS = Gauge("xrunner_workers_live", "Workers with a fresh heartbeat", ["pool"])


class Workers:
    """The live workers, from the `xr_workers` KV bucket (a heartbeat older than the TTL means gone)."""

    def __init__(self, js: JetStreamContext, changed: asyncio.Event) -> None:
        self.js, self.changed = js, changed
        self._seen: dict[str, tuple[float, WorkerHeartbeat]] = {}

    def live(self) -> list[WorkerHeartbeat]:
        horizon = time.monotonic() - WORKER_TTL_S
        return [hb for at, hb in self._seen.values() if at >= horizon]

    async def watch(self) -> None:
        kv = await self.js.key_value(subjects.WORKERS_BUCKET)
        watcher = await kv.watchall()
        async for entry in watcher:
            if entry is None or entry.key is None:
                continue
            if entry.value:
                hb = codec.decode(entry.value, WorkerHeartbeat)
                fresh = entry.key not in self._seen
                self._seen[entry.key] = (time.monotonic(), hb)
                if fresh:
                    self.changed.set()
            else:
                self._seen.pop(entry.key, None)


class Admission:
    """Answers every `job.submitted` with `job.queued` or `job.rejected`."""

    def __init__(self, js: JetStreamContext, pool: asyncpg.Pool, default_pool: str) -> None:
        self.js, self.pool, self.store, self.default_pool = js, pool, EventStore(js), default_pool

    async def run(self) -> None:
        config = ConsumerConfig(
            durable_name="scheduler_admission",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30.0,
            max_deliver=20,
            filter_subject=subjects.job_events(token="submitted"),
        )
        sub = await durable(self.js, subjects.EVENTS_STREAM, config)
        await consume(sub, self.handle, name="scheduler_admission")

    async def handle(self, msg: Msg) -> None:
        event = codec.decode(msg.data, JobSubmitted)
        expect = msg.metadata.sequence.stream
        while True:
            try:
                await self._decide(event, expect)
                break
            except ConflictError:
                history = await self.store.history(event.tenant, event.job_id)
                view = lifecycle.replay(history)
                if view is None or view.state != "submitted":
                    break  # already decided (a redelivery) or moved on
                expect = history[-1][0]
        await msg.ack()

    async def _decide(self, event: JobSubmitted, expect: int) -> None:
        job_pool = event.spec.resources.pool or self.default_pool
        total, in_pool = await store.queue_counts(self.pool, job_pool)
        decision = admission.admit(event.spec, admission.QueueSnapshot(total, in_pool, 1_000_000), self.default_pool)
        common = {
            "event_id": new_id(),
            "occurred_at": datetime.now(UTC),
            "tenant": event.tenant,
            "job_id": event.job_id,
        }
        if isinstance(decision, Admitted):
            queued = JobQueued(**common, pool=decision.pool, position=decision.position)
            await self.store.append(queued, msg_id=f"{event.job_id}:0:queued", expect=expect)
        else:
            REJECTED.labels(decision.cause).inc()
            rejected = JobRejected(
                **common,
                cause=decision.cause,
                scope=decision.scope,
                retry_after_s=decision.retry_after_s,
                detail=decision.detail,
            )
            await self.store.append(rejected, msg_id=f"{event.job_id}:0:rejected", expect=expect)


class Dispatcher:
    """Releases queued jobs into `xr.run.<pool>` as far as the pools have room, whenever something changes."""

    def __init__(
        self,
        js: JetStreamContext,
        pool: asyncpg.Pool,
        workers: Workers,
        wake: asyncio.Event,
        batch: int,
        redispatch_after_s: float,
    ) -> None:
        self.js, self.pool, self.workers, self.wake = js, pool, workers, wake
        self.store, self.batch, self.redispatch_after_s = EventStore(js), batch, redispatch_after_s

    async def run(self) -> None:
        last_sweep = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=0.5)
            self.wake.clear()
            await self.round()
            if time.monotonic() - last_sweep > self.redispatch_after_s / 2:
                await self.republish_stale()
                last_sweep = time.monotonic()

    async def round(self) -> int:
        live = self.workers.live()
        for name in {w.pool for w in live}:
            WORKERS.labels(name).set(sum(1 for w in live if w.pool == name))
        free = dispatch.free_slots(live, await store.active_per_pool(self.pool))
        if not any(free.values()):
            return 0
        chosen = dispatch.plan(await store.queued(self.pool, self.batch), free)
        for job in chosen:
            await self._dispatch(job)
        return len(chosen)

    async def _dispatch(self, job: dispatch.Candidate) -> None:
        attempt = job.attempt + 1
        event = JobDispatched(
            event_id=new_id(),
            occurred_at=datetime.now(UTC),
            tenant=job.tenant,
            job_id=job.job_id,
            attempt=attempt,
            pool=job.pool,
        )
        try:
            appended = await self.store.append(event, msg_id=f"{job.job_id}:{attempt}:dispatched", expect=job.version)
        except ConflictError:
            return  # the projection was behind; the next round sees the job's new state
        history = await self.store.history(job.tenant, job.job_id)
        view = lifecycle.replay(history)
        assert view is not None
        await self._publish(view.spec, job.tenant, job.job_id, attempt, appended.seq, event.occurred_at, job.pool)
        DISPATCHED.labels(job.pool).inc()

    async def _publish(
        self, spec: object, tenant: str, job_id: str, attempt: int, fence: int, at: datetime, pool: str
    ) -> None:
        run = RunJob(
            tenant=tenant,
            job_id=job_id,
            attempt=attempt,
            spec=spec,
            fence_seq=fence,  # type: ignore[arg-type]
            dispatched_at=at,
        )
        await self.js.publish(
            subjects.run_queue(pool),
            codec.encode(run),
            stream=subjects.RUN_STREAM,
            headers={"Nats-Msg-Id": f"run:{job_id}:{attempt}"},
        )

    async def republish_stale(self) -> None:
        """Re-release attempts dispatched long ago but never started (the scheduler may have died between
        appending `job.dispatched` and publishing the run message). The worker's fence makes a duplicate harmless."""
        for view, fence in await store.stale_dispatches(self.pool, self.redispatch_after_s):
            assert view.pool is not None
            await self._publish(view.spec, view.tenant, view.id, view.attempt, fence, view.updated_at, view.pool)
