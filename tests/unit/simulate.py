"""A small discrete-time model of the scheduler for unit tests: it appends the events that the gateway and the
workers would append, asks the scheduler's real `reconcile` for its decisions and appends those, and folds
everything into a `SchedulerState` the way the service does.

The scheduler applies its own appends at once and the projector folds the whole log again later, in order (so the
scheduler's own events reach the state twice); the gateway's and the workers' events reach it only through the
projector. Every public method leaves the state fully projected. `replay()` folds the same log once into a fresh
state, which is what a new leader or a projection rebuild would see.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from xrunner.contracts import codec
from xrunner.contracts import events as ev
from xrunner.contracts.api import JobView
from xrunner.contracts.messages import WorkerHeartbeat
from xrunner.contracts.spec import JobSpec, ProcessWorkload, Resources, RetryPolicy
from xrunner.contracts.stats import TenantLimits
from xrunner.scheduler import fairness, reconcile
from xrunner.scheduler.placement import Pool
from xrunner.scheduler.reconcile import Admit, Append, Intent, Round
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.scheduler.state import Key, SchedulerState

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
WIDE_OPEN = TenantLimits(weight=1.0, max_inflight=1000, max_queued=100_000, submit_rate_per_s=1000.0)
Log = list[tuple[int, ev.Event]]


def spec(
    cpu: int = 1000,
    memory: int = 256,
    gpu: int = 0,
    pool: str | None = None,
    priority: int = 0,
    retry: RetryPolicy | None = None,
) -> JobSpec:
    """A process job with these resource hints and this priority."""
    return JobSpec(
        workload=ProcessWorkload(argv=["true"]),
        resources=Resources(cpu_millis=cpu, memory_mib=memory, gpu=gpu, pool=pool),
        priority=priority,
        retry=retry or RetryPolicy(),
    )


def heartbeat(
    worker_id: str,
    pool: str = "default",
    slots: int = 4,
    cpu: int = 4000,
    memory: int = 8192,
    gpu: int = 0,
    draining: bool = False,
    free: int | None = None,
    workloads: tuple[str, ...] = ("process",),
) -> WorkerHeartbeat:
    """What a live worker advertises."""
    return WorkerHeartbeat(
        workloads=list(workloads),
        worker_id=worker_id,
        pool=pool,
        slots=slots,
        free_slots=slots if free is None else free,
        cpu_millis=cpu,
        memory_mib=memory,
        gpu=gpu,
        draining=draining,
    )


def pool(
    name: str = "default", workers: int = 1, slots: int = 4, cpu: int = 4000, memory: int = 8192, gpu: int = 0
) -> Pool:
    return Pool(name, workers, slots, cpu, memory, gpu)


def fold(log: Iterable[tuple[int, ev.Event]], defaults: TenantLimits = WIDE_OPEN) -> SchedulerState:
    """A fresh state with `log` folded once, in order."""
    state = SchedulerState(defaults)
    for seq, event in log:
        state.apply(seq, event)
    return state


def dump_jobs(state: SchedulerState) -> dict[Key, Any]:
    """A deep, comparable copy of the state's jobs (views are updated in place)."""
    return {key: msgspec.json.decode(codec.encode(view)) for key, view in sorted(state.jobs.items())}


def dump_tenants(state: SchedulerState) -> dict[str, Any]:
    """A comparable copy of every tenant's limits, bucket, usage and fences."""
    return {
        name: (
            msgspec.json.decode(codec.encode(rec.limits)),
            (rec.bucket.tokens, rec.bucket.at),
            (rec.usage.cpu, rec.usage.memory, rec.usage.gpu, rec.usage.at),
            rec.config_seq,
            rec.bucket_seq,
        )
        for name, rec in sorted(state.tenants.items())
    }


def plan_of(plan: fairness.Plan) -> tuple[list[tuple[Key, str]], dict[Key, tuple[str, str | None]]]:
    """A comparable form of a plan: the picks in order and the waiting reasons."""
    return [(p.key, p.pool) for p in plan.picks], dict(plan.waiting)


class Sim:
    """Drives one scheduler's state through the events of a little cluster's life."""

    def __init__(self, defaults: TenantLimits = WIDE_OPEN, max_queued_total: int = 1_000_000) -> None:
        self.state = SchedulerState(defaults)
        self.log: Log = []
        self.projected = 0
        self.now = T0
        self.max_queued_total = max_queued_total
        self._ids = itertools.count(1)
        self._events = itertools.count(1)

    # --- the log -------------------------------------------------------------------------------------------------

    def append(self, event: ev.Event, by_scheduler: bool = False) -> int:
        """Append `event` at the next sequence; the scheduler applies its own appends at once."""
        seq = len(self.log) + 1
        self.log.append((seq, event))
        if by_scheduler:
            self.state.apply(seq, event)
        return seq

    def project(self) -> None:
        """The projector catches up: fold every event past its position, the scheduler's own ones again."""
        for seq, event in self.log[self.projected :]:
            self.state.apply(seq, event)
        self.projected = len(self.log)

    def replay(self) -> SchedulerState:
        return fold(self.log, self.state.defaults)

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)

    def _common(self, tenant: str, job_id: str, attempt: int = 0) -> dict[str, Any]:
        return {
            "event_id": f"e{next(self._events)}",
            "occurred_at": self.now,
            "tenant": tenant,
            "job_id": job_id,
            "attempt": attempt,
        }

    # --- gateway -------------------------------------------------------------------------------------------------

    def configure(
        self,
        tenant: str,
        weight: float = 1.0,
        max_inflight: int = 100,
        max_queued: int = 10_000,
        rate: float = 1000.0,
    ) -> int:
        seq = self.append(
            ev.TenantConfigured(
                event_id=f"e{next(self._events)}",
                occurred_at=self.now,
                tenant=tenant,
                weight=weight,
                max_inflight=max_inflight,
                max_queued=max_queued,
                submit_rate_per_s=rate,
            )
        )
        self.project()
        return seq

    def submitted(self, tenant: str, job: JobSpec | None = None) -> Key:
        """Only the gateway's `job.submitted` (admission has not decided yet)."""
        job_id = f"j{next(self._ids):06d}"
        self.append(ev.JobSubmitted(**self._common(tenant, job_id), spec=job or spec()))
        self.project()
        return (tenant, job_id)

    def submit(
        self,
        tenant: str,
        priority: int = 0,
        cpu: int = 1000,
        memory: int = 256,
        gpu: int = 0,
        pool: str | None = None,
        job: JobSpec | None = None,
    ) -> Key:
        """Submit a job that admission accepts."""
        key = self.submitted(tenant, job or spec(cpu, memory, gpu, pool, priority))
        assert self.admit(key), f"admission rejected {key}"
        return key

    def submit_many(self, tenant: str, count: int, **hints: Any) -> list[Key]:
        return [self.submit(tenant, **hints) for _ in range(count)]

    # --- scheduler: its decisions come from the real reconcile ---------------------------------------------------

    def reconcile(self, inputs: Round, heartbeats: Iterable[WorkerHeartbeat] = ()) -> list[Intent]:
        settings = SchedulerSettings(max_queued_total=self.max_queued_total)
        return reconcile.reconcile(self.state, heartbeats, self.now, settings, inputs, self._event_id)

    def carry_out(self, intents: Iterable[Intent]) -> list[Intent]:
        """Append the intents' events as the scheduler does (it applies its own appends at once)."""
        done = list(intents)
        for intent in done:
            assert isinstance(intent, Append), intent
            assert self.state.jobs[intent.key].version == intent.expect, "the scheduler decided on a stale view"
            self.append(intent.event, by_scheduler=True)
        return done

    def decide(self, key: Key, inputs: Round, heartbeats: Iterable[WorkerHeartbeat] = ()) -> Intent:
        """The scheduler's one decision for `key` in a round, carried out."""
        (intent,) = [i for i in self.reconcile(inputs, heartbeats) if i.key == key]
        self.carry_out([intent])
        return intent

    def admit(self, key: Key) -> bool:
        """Admission: `job.queued` or `job.rejected`. True when admitted."""
        return isinstance(self.decide(key, Round(dirty=[key])), Admit)

    def plan(self, pools: Mapping[str, Pool]) -> fairness.Plan:
        return fairness.plan(self.state, pools, self.now)

    def dispatch(self, picks: Iterable[fairness.Pick]) -> list[Key]:
        """Append `job.dispatched` for each pick, as the scheduler does (attempt + 1)."""
        intents = reconcile.dispatches(self.state, picks, self.now, self._event_id, basis=self.projected)
        return [i.key for i in self.carry_out(intents)]

    def cancel(self, key: Key) -> None:
        """A cancel request for a job that has not started, and the scheduler's `job.cancelled`."""
        view = self.state.jobs[key]
        self.append(ev.JobCancelRequested(**self._common(*key, view.attempt)))
        self.project()
        self.decide(key, Round(dirty=[key]))

    def lose(self, key: Key) -> None:
        """The job's worker stops heartbeating: the next sweep gives its attempt up."""
        self.decide(key, Round(sweep=True, settled=True), heartbeats=())

    def schedule_retry(self, key: Key) -> datetime:
        """The scheduler schedules the failed attempt's retry; returns when it may start."""
        intent = self.decide(key, Round(dirty=[key]))
        assert isinstance(intent.event, ev.JobRetryScheduled), intent
        return intent.event.not_before

    def _event_id(self) -> str:
        return f"e{next(self._events)}"

    # --- workers -------------------------------------------------------------------------------------------------

    def start(self, keys: Iterable[Key], worker_id: str = "w1") -> None:
        for key in keys:
            view = self.state.jobs[key]
            self.append(ev.JobStarted(**self._common(*key, view.attempt), worker_id=worker_id, sandbox="process"))
        self.project()

    def finish(self, keys: Iterable[Key]) -> None:
        """The attempts succeed."""
        for key in keys:
            view = self.state.jobs[key]
            self.append(ev.JobSucceeded(**self._common(*key, view.attempt)))
        self.project()

    def fail(self, key: Key, exit_code: int = 1, final: bool = False) -> None:
        view = self.state.jobs[key]
        self.append(ev.JobFailed(**self._common(*key, view.attempt), exit_code=exit_code, final=final))
        self.project()

    def step(self, pools: Mapping[str, Pool]) -> fairness.Plan:
        """One dispatch round: plan, dispatch the picks, and the workers start them."""
        plan = self.plan(pools)
        self.start(self.dispatch(plan.picks))
        return plan

    # --- reading -------------------------------------------------------------------------------------------------

    def jobs(self, tenant: str | None = None, states: tuple[str, ...] = fairness.ACTIVE) -> list[JobView]:
        return [v for v in self.state.jobs.values() if v.state in states and tenant in (None, v.tenant)]

    def inflight(self, tenant: str) -> int:
        return len(self.jobs(tenant))

    def in_pool(self, name: str) -> int:
        return sum(1 for v in self.jobs() if v.pool == name)


# --- random histories ------------------------------------------------------------------------------------------------

CPUS = (250, 1000, 2000, 8000)
MEMORIES = (256, 1024, 16384)
GPUS = (0, 0, 0, 1, 2)
HINTS = (None, None, None, None, None, "gpu", "highmem", "nowhere")


def random_job(rng: random.Random) -> JobSpec:
    return spec(rng.choice(CPUS), rng.choice(MEMORIES), rng.choice(GPUS), rng.choice(HINTS), rng.randint(-2, 2))


def churn(
    sim: Sim,
    rng: random.Random,
    steps: int,
    pools: Mapping[str, Pool],
    tenants: Sequence[str],
    check: Callable[[Sim, fairness.Plan], None] | None = None,
) -> None:
    """`steps` dispatch rounds of a busy little cluster: submissions, reconfigurations, starts, successes,
    failures with and without retries, lost workers, cancels and time passing. `check` sees every plan before its
    picks are dispatched."""
    for _ in range(steps):
        for _ in range(rng.randint(0, 4)):
            sim.submit(rng.choice(tenants), job=random_job(rng))
        if rng.random() < 0.1:
            sim.configure(rng.choice(tenants), rng.choice((0.5, 1.0, 3.0)), rng.randint(0, 6))
        plan = sim.plan(pools)
        if check is not None:
            check(sim, plan)
        sim.dispatch(plan.picks)
        sim.start([(v.tenant, v.id) for v in sim.jobs(states=("dispatched",)) if rng.random() < 0.7])
        _end_some(sim, rng)
        sim.tick(rng.choice((0.5, 5.0, 30.0, 120.0)))


def _end_some(sim: Sim, rng: random.Random) -> None:
    for view in sim.jobs(states=("running", "queued")):
        key, roll = (view.tenant, view.id), rng.random()
        if view.state == "queued":
            if view.reason == "backoff" and view.not_before is None:
                sim.schedule_retry(key)
            elif roll < 0.03:
                sim.cancel(key)
        elif roll < 0.3:
            sim.finish([key])
        elif roll < 0.35:
            sim.fail(key, final=rng.random() < 0.5)
        elif roll < 0.4:
            sim.lose(key)
    sim.project()
