"""The active scheduler's loop: reacts to what the projection folded (admission, cancels, retries), watches
liveness and deadlines, dispatches by the fair plan, and publishes its snapshot. Every append is compare-and-set
on the job's history, applied to the working state at once; a lost race reloads the job and decides again."""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import nats.errors
import structlog
from nats.js import JetStreamContext

from xrunner.contracts import codec, subjects
from xrunner.contracts import events as ev
from xrunner.contracts.api import JobView
from xrunner.contracts.messages import RunJob, WorkerHeartbeat
from xrunner.contracts.policy import Admitted, Bucket, admit, backoff_s
from xrunner.contracts.stats import STATS_GLOBAL_KEY, tenant_stats_key
from xrunner.scheduler import explain, fairness, placement
from xrunner.scheduler.metrics import Metrics
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.scheduler.state import SchedulerState
from xrunner.scheduler.workers import Workers
from xrunner.servicekit.eventstore import ConflictError, EventStore
from xrunner.servicekit.ids import new_id

log = structlog.get_logger()

CONCURRENT_APPENDS = 64


RUNNING_LIST_GRACE_S = 3.0  # a few heartbeats: how long a worker may take to list an attempt it started


def attempt_lost(view: JobView, beat: WorkerHeartbeat | None) -> bool:
    """A running attempt is lost when its worker stopped heartbeating, or when the worker heartbeats without
    listing it well after it started (the process died and a new one took over its id)."""
    if beat is None:
        return True
    if view.id in beat.running or beat.at is None or view.started_at is None:
        return False
    return (beat.at - view.started_at).total_seconds() > RUNNING_LIST_GRACE_S


class Scheduler:
    def __init__(
        self,
        js: JetStreamContext,
        state: SchedulerState,
        workers: Workers,
        settings: SchedulerSettings,
        scheduler_id: str,
        wake: asyncio.Event,
    ) -> None:
        self.js, self.store, self.state, self.workers = js, EventStore(js), state, workers
        self.settings, self.scheduler_id, self.wake = settings, scheduler_id, wake
        self.dirty: set[tuple[str, str]] = set()
        self.metrics = Metrics()
        self.plan = fairness.Plan()
        self.since = time.monotonic()
        self.rereleased: dict[tuple[str, str], float] = {}

    def folded(self, views: list[JobView], started: list[tuple[ev.JobStarted, JobView]]) -> None:
        """Called by the projection for every folded batch: decide for those jobs soon."""
        self.dirty.update((v.tenant, v.id) for v in views)
        for event, view in started:
            self.metrics.started(event, view)
        self.wake.set()

    async def run(self) -> None:
        last_tick = last_stats = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.settings.tick_s)
            self.wake.clear()
            now = datetime.now(UTC)
            await self.react(now)
            if time.monotonic() - last_tick >= self.settings.tick_s:
                await self.sweep(now)
                last_tick = time.monotonic()
            await self.dispatch(now)
            if time.monotonic() - last_stats >= self.settings.stats_every_s:
                try:
                    await self.publish_stats(now)
                except (nats.errors.Error, TimeoutError) as exc:  # advisory; NATS restarting: the next round
                    log.warning("stats not published", error=repr(exc))
                last_stats = time.monotonic()

    async def react(self, now: datetime) -> None:
        """Decide for the jobs the log just changed: admit new ones, cancel queued ones, schedule retries.
        Decisions are taken one by one (admission counts and rate buckets carry over); appends run together."""
        dirty, self.dirty = self.dirty, set()
        counts = self._queued_counts()
        buckets: dict[str, Bucket] = {}
        appends = []
        for key in sorted(dirty, key=lambda k: k[1]):
            view = self.state.jobs.get(key)
            if view is None:
                continue
            if view.state == "submitted" and not view.cancel_requested:
                appends.append(self._admit(view, counts, buckets, now))
            elif view.cancel_requested and view.state in ("submitted", "queued"):
                appends.append(self._emit(view, ev.JobCancelled, "cancelled", detail="cancelled while queued"))
            elif view.state == "queued" and view.reason == "backoff" and view.not_before is None:
                jitter = (zlib.crc32(f"{view.id}:{view.attempt}".encode()) % 1000) / 1000
                delay = backoff_s(view.spec.retry, view.retries_used - 1, jitter)
                appends.append(self._emit(view, ev.JobRetryScheduled, "retry_scheduled",
                                          not_before=now + timedelta(seconds=delay), reason=view.reason or ""))
        await self._together(appends)

    async def _together(self, appends: list[Coroutine[Any, Any, bool]]) -> list[bool]:
        """Run appends for different jobs concurrently (each is compare-and-set on its own job)."""
        gate = asyncio.Semaphore(CONCURRENT_APPENDS)

        async def gated(append: Coroutine[Any, Any, bool]) -> bool:
            async with gate:
                return await append

        return list(await asyncio.gather(*(gated(a) for a in appends)))

    def _queued_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for view in self.state.jobs.values():
            if view.state == "queued":
                counts[view.tenant] = counts.get(view.tenant, 0) + 1
        return counts

    def _admit(self, view: JobView, counts: dict[str, int], buckets: dict[str, Bucket],
               now: datetime) -> Coroutine[Any, Any, bool]:
        tenant = self.state.tenant(view.tenant)
        bucket = buckets.get(view.tenant, tenant.bucket)
        total = sum(counts.values())
        decision = admit(tenant.limits, counts.get(view.tenant, 0), total, self.settings.max_queued_total,
                         bucket, now, self.metrics.dispatch_rate())
        if isinstance(decision, Admitted):
            buckets[view.tenant] = decision.bucket
            counts[view.tenant] = counts.get(view.tenant, 0) + 1
            return self._emit(view, ev.JobQueued, "queued", now=now, pool=view.spec.resources.pool or "",
                              position=counts[view.tenant])
        self.metrics.rejected.labels(decision.cause).inc()
        return self._emit(view, ev.JobRejected, "rejected", now=now, cause=decision.cause, scope=decision.scope,
                          retry_after_s=decision.retry_after_s, detail=decision.detail)

    async def sweep(self, now: datetime) -> None:
        """Deadlines and liveness: lost workers, queue timeouts, the execution-timeout backstop."""
        beats = {w.worker_id: w for w in self.workers.live()}
        settled = time.monotonic() - self.since > self.settings.worker_lease_s
        for view in list(self.state.jobs.values()):
            spec = view.spec
            if view.state == "running" and settled and attempt_lost(view, beats.get(view.worker_id or "")):
                self.metrics.lost.inc()
                await self._emit(
                    view, ev.JobLost, "lost", worker_id=view.worker_id or "", detail="the worker stopped heartbeating"
                )
            elif (
                view.state == "queued"
                and spec.queue_timeout_s
                and view.queued_at
                and (now - view.queued_at).total_seconds() > spec.queue_timeout_s
            ):
                await self._emit(
                    view, ev.JobExpired, "expired", waited_s=round((now - view.queued_at).total_seconds(), 3)
                )
            elif (
                view.state == "running"
                and view.started_at
                and (now - view.started_at).total_seconds() > spec.timeout_s + self.settings.timeout_grace_s
            ):
                await self._emit(view, ev.JobTimedOut, "timed_out", timeout_s=spec.timeout_s)
            elif view.state == "dispatched":
                await self._rerelease(view, now)
        for key in [k for k in self.rereleased if k not in self.state.jobs]:
            del self.rereleased[key]

    async def _rerelease(self, view: JobView, now: datetime) -> None:
        """Publish the work item again for an attempt dispatched long ago and not started: the scheduler may have
        died between appending `job.dispatched` and publishing it. A copy that did go out is dropped by the
        stream's duplicate window, and the worker's fence makes any later copy harmless."""
        key = (view.tenant, view.id)
        dispatch = self.state.dispatches.get(key)
        if dispatch is None or (now - dispatch[1]).total_seconds() < self.settings.redispatch_after_s:
            return
        last = self.rereleased.get(key, 0.0)
        if time.monotonic() - last >= self.settings.redispatch_after_s:
            self.rereleased[key] = time.monotonic()
            log.info("re-releasing a dispatched attempt", job_id=view.id, attempt=view.attempt)
            await self._publish_run(view)

    async def dispatch(self, now: datetime) -> None:
        pools = placement.pools_from(self.workers.live())
        self.plan = fairness.plan(self.state, pools, now)
        picks = [(p, v) for p in self.plan.picks if (v := self.state.jobs.get(p.key)) and v.state == "queued"]
        await self._together([self._release(view, pick.pool, now) for pick, view in picks])

    async def _release(self, view: JobView, pool: str, now: datetime) -> bool:
        """Append `job.dispatched` (the next attempt), then put the work item on `xr.run.<pool>`."""
        attempt = view.attempt + 1
        if not await self._emit(view, ev.JobDispatched, "dispatched", attempt=attempt, pool=pool,
                                retries_used=view.retries_used):
            return False
        await self._publish_run(self.state.jobs[(view.tenant, view.id)])
        self.metrics.dispatched(view, pool, now)
        return True

    async def _publish_run(self, view: JobView) -> None:
        """Put the work item of the job's current attempt on its pool's queue (deduplicated per attempt)."""
        fence, at = self.state.dispatches[(view.tenant, view.id)]
        run = RunJob(tenant=view.tenant, job_id=view.id, attempt=view.attempt, spec=view.spec, fence_seq=fence,
                     dispatched_at=at, retries_used=view.retries_used)
        assert view.pool is not None
        await self.js.publish(subjects.run_queue(view.pool), codec.encode(run), stream=subjects.RUN_STREAM,
                              headers={"Nats-Msg-Id": f"run:{view.id}:{view.attempt}"})

    async def _emit(
        self,
        view: JobView,
        cls: type[ev.JobEvent],
        kind: str,
        *,
        now: datetime | None = None,
        attempt: int | None = None,
        **fields: object,
    ) -> bool:
        """Append one event for `view` if its history has not moved; apply it to the state either way."""
        attempt = view.attempt if attempt is None else attempt
        event = cls(
            event_id=new_id(),
            occurred_at=now or datetime.now(UTC),
            tenant=view.tenant,
            job_id=view.id,
            attempt=attempt,
            **fields,
        )
        try:
            appended = await self.store.append(event, msg_id=f"{view.id}:{attempt}:{kind}", expect=view.version)
        except ConflictError:
            self.state.reload_job(await self.store.history(view.tenant, view.id))
            self.dirty.add((view.tenant, view.id))
            self.wake.set()
            return False
        self.state.apply(appended.seq, event)
        return True

    async def publish_stats(self, now: datetime) -> None:
        pools = placement.pools_from(self.workers.live())
        kv = await self.js.key_value(subjects.STATS_BUCKET)
        tenants = explain.tenant_stats(
            self.state, self.plan, pools, self.metrics.tenant_rates(), self.metrics.tenant_latency(), now
        )
        for stats in tenants:
            await kv.put(tenant_stats_key(stats.tenant), codec.encode(stats))
        summary = explain.global_stats(
            self.state,
            pools,
            self.scheduler_id,
            self.settings.max_queued_total,
            self.metrics.latency(),
            self.state.defaults,
            now,
        )
        await kv.put(STATS_GLOBAL_KEY, codec.encode(summary))
        self.metrics.observe_snapshot(tenants, summary)
