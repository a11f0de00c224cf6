"""The active scheduler's loop: gathers what reconcile needs (the working state, the live workers, the jobs the log
just changed, `now`), asks reconcile what to do, and carries it out. Every append is compare-and-set on the job's
history and applied to the working state at once; a lost race reloads the job and decides again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from xrunner.contracts import codec, subjects
from xrunner.contracts import events as ev
from xrunner.contracts.api import JobView
from xrunner.contracts.messages import RunJob
from xrunner.contracts.stats import STATS_GLOBAL_KEY, tenant_stats_key
from xrunner.scheduler import explain, fairness, placement
from xrunner.scheduler.metrics import Metrics
from xrunner.scheduler.reconcile import Append, Dispatch, Intent, Lose, Reject, Rerelease, Round, reconcile
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.scheduler.state import Key, SchedulerState
from xrunner.scheduler.workers import Workers
from xrunner.servicekit import tracing
from xrunner.servicekit.eventstore import ConflictError, EventStore, publish
from xrunner.servicekit.ids import new_id

log = structlog.get_logger()

CONCURRENT_APPENDS = 64


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
        self.dirty: set[Key] = set()
        self.metrics = Metrics()
        self.since = time.monotonic()
        self.rereleased: dict[Key, datetime] = {}
        self.basis = 0  # the position of the projection's last batch folded here (what decisions record)
        self.traces: dict[Key, str | None] = {}  # each live job's `traceparent`, from its `job.submitted`

    def folded(self, batch: Sequence[tuple[int, ev.Event]]) -> None:
        """Called by the projection for every folded batch: the working state now holds the log up to its last
        event (a replay of the decisions takes it as their basis)."""
        if batch:
            self.basis = max(self.basis, batch[-1][0])
        self._fold(batch)

    def _fold(self, batch: Sequence[tuple[int, ev.Event]]) -> None:
        """Fold a batch of the projection's or one event of the live feed into the working state (where the
        scheduler's own appends and the feed's submissions may be already), and decide soon for the jobs it
        changed. An event the working state already holds changes nothing and wakes nobody (most of what the
        projection folds is the scheduler's own decisions)."""
        changed = False
        for seq, event in batch:
            before = self.state.jobs.get((event.tenant, event.job_id)) if isinstance(event, ev.JobEvent) else None
            version = before.version if before is not None else 0  # the fold updates `before` in place
            view = self.state.apply(seq, event)
            changed = changed or isinstance(event, ev.TenantConfigured)
            if view is None or view.version == version:
                continue
            changed = True
            self.dirty.add((view.tenant, view.id))
            if isinstance(event, ev.JobStarted) and view.state == "running" and view.version == seq:
                self.metrics.started(event, view)
        if changed:
            self.wake.set()

    def stored(self, seq: int, msg: Msg) -> None:
        """A submission (or a tenant's configuration) the log just stored, from the live feed: fold it into the
        working state now, so admission decides without waiting for the projection's transaction. The projection
        folds it again later (a no-op: the job's version is past it); the decision is an append compare-and-set on
        the job's history like any other."""
        try:
            event = codec.decode_event(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return  # the projection parks it
        if isinstance(event, ev.JobSubmitted):
            self.traces[(event.tenant, event.job_id)] = tracing.of(msg.headers)
        self._fold([(seq, event)])

    async def run(self) -> None:
        last_tick = last_stats = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.settings.tick_s)
            self.wake.clear()
            sweep = time.monotonic() - last_tick >= self.settings.tick_s
            await self.decide(datetime.now(UTC), sweep)
            if sweep:
                last_tick = time.monotonic()
            if time.monotonic() - last_stats >= self.settings.stats_every_s:
                try:
                    await self.publish_stats(datetime.now(UTC))
                except (nats.errors.Error, TimeoutError) as exc:  # advisory; NATS restarting: the next round
                    log.warning("stats not published", error=repr(exc))
                last_stats = time.monotonic()

    async def decide(self, now: datetime, sweep: bool) -> None:
        """Reconcile and carry out until a round changes no job (the last one dispatches by the fair plan)."""
        dirty, self.dirty = self.dirty, set()
        while True:
            inputs = Round(
                dirty=dirty,
                sweep=sweep,
                settled=time.monotonic() - self.since > self.settings.lost_after_s,
                drain_rate_per_s=self.metrics.dispatch_rate(),
                rereleased=self.rereleased,
                basis=self.basis,
            )
            intents = reconcile(self.state, self.workers.live(), now, self.settings, inputs, new_id)
            await self.carry_out(intents, now)
            if not any(isinstance(i, Append) and not isinstance(i, Dispatch) for i in intents):
                break
            dirty, sweep = set(), False
        for key in [k for k in self.rereleased if k not in self.state.jobs]:
            del self.rereleased[key]
        for key in [k for k in self.traces if k not in self.state.jobs]:
            del self.traces[key]

    async def carry_out(self, intents: Sequence[Intent], now: datetime) -> None:
        """Run the appends for different jobs concurrently (each is compare-and-set on its own job)."""
        gate = asyncio.Semaphore(CONCURRENT_APPENDS)

        async def gated(intent: Intent) -> None:
            async with gate:
                with tracing.span(await self.trace_of(intent.key)):  # the decision belongs to the job's trace
                    await self._carry_out(intent, now)

        await asyncio.gather(*(gated(i) for i in intents))

    async def trace_of(self, key: Key) -> str | None:
        """The job's `traceparent`: as the live feed saw its submission, else read once from the log (a job
        submitted before this scheduler became active)."""
        if key not in self.traces:
            tenant, job_id = key
            try:
                first = await self.js.get_msg(subjects.EVENTS_STREAM, seq=1, next=True, direct=True,
                                              subject=subjects.job_history(tenant, job_id))
                self.traces[key] = tracing.of(first.headers)
            except (nats.errors.Error, TimeoutError):
                return None
        return self.traces[key]

    async def _carry_out(self, intent: Intent, now: datetime) -> None:
        if isinstance(intent, Rerelease):
            view = self.state.jobs.get(intent.key)
            if view is not None and view.state == "dispatched" and view.attempt == intent.attempt:
                self.rereleased[intent.key] = now
                log.info("re-releasing a dispatched attempt", job_id=view.id, attempt=view.attempt, why=intent.why)
                await self._publish_run(view)
            return
        if isinstance(intent, Reject):
            self.metrics.rejected.labels(intent.event.cause).inc()
        elif isinstance(intent, Lose):
            self.metrics.lost.inc()
        if await self._append(intent) and isinstance(intent, Dispatch):
            view = self.state.jobs[intent.key]
            await self._publish_run(view)
            self.metrics.dispatched(view, intent.event.pool, now)

    async def _append(self, intent: Append) -> bool:
        """Append the intent's event if the job's history has not moved, and apply it to the state; on a lost race
        reload the job and decide for it again."""
        try:
            appended = await self.store.append(intent.event, msg_id=intent.msg_id, expect=intent.expect)
        except ConflictError:
            tenant, job_id = intent.key
            self.state.reload_job(await self.store.history(tenant, job_id))
            self.dirty.add(intent.key)
            self.wake.set()
            return False
        except (nats.errors.Error, TimeoutError) as exc:  # NATS away: the sweep decides again what still awaits it
            log.warning("decision not appended", job_id=intent.event.job_id, kind=intent.kind, error=repr(exc))
            return False
        self.state.apply(appended.seq, intent.event)
        log.info("decision appended", job_id=intent.event.job_id, kind=intent.kind, seq=appended.seq)
        return True

    async def _publish_run(self, view: JobView) -> None:
        """Put the work item of the job's current attempt on its pool's queue (deduplicated per attempt)."""
        fence, at = self.state.dispatches[(view.tenant, view.id)]
        run = RunJob(tenant=view.tenant, job_id=view.id, attempt=view.attempt, spec=view.spec, fence_seq=fence,
                     dispatched_at=at, retries_used=view.retries_used)
        assert view.pool is not None
        try:
            await publish(self.js, subjects.run_queue(view.pool), codec.encode(run), stream=subjects.RUN_STREAM,
                          headers=tracing.headers({"Nats-Msg-Id": f"run:{view.id}:{view.attempt}"}))
        except (nats.errors.Error, TimeoutError) as exc:  # the sweep re-releases a dispatched attempt not started
            log.warning("work item not published", job_id=view.id, attempt=view.attempt, error=repr(exc))

    async def publish_stats(self, now: datetime) -> None:
        pools = placement.pools_from(self.workers.live())
        kv = await self.js.key_value(subjects.STATS_BUCKET)
        plan = fairness.plan(self.state, pools, now)
        tenants = explain.tenant_stats(
            self.state, plan, pools, self.metrics.tenant_rates(), self.metrics.tenant_latency(), now
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
