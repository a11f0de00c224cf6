"""Answers "what would have happened" with other tenant weights, in-flight caps or pool sizes: a discrete-event model
of the recorded history, run with and without the overrides by the scheduler's real fold and fair plan, compared job
by job (which would have started earlier or later, and by how much). Pure.

The model, and its limits: a job enters the queue when admission queued it in the record (admission is not decided
again) and leaves it when it was cancelled or expired there, if the model has not dispatched it by then. It runs
once: it starts after the delay from dispatch to start the record shows for it, and runs as long as its last
recorded attempt ran (a job that never ran in the record runs 0 s); retries and lost workers are not modelled. The
pools are the ones the recorded rounds saw (each `why` carries them), from the latest round before each moment. The
scheduler plans whenever the modelled log changes and at every recorded round. Both runs use this model, so the
deltas are the overrides' effect on it; how closely the run without overrides follows the record is reported too.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import msgspec

from xrunner.contracts import events as ev
from xrunner.contracts.spec import JobSpec
from xrunner.contracts.stats import TenantLimits
from xrunner.scheduler import fairness, reconcile
from xrunner.scheduler.placement import Pool
from xrunner.scheduler.replay import pools_of
from xrunner.scheduler.state import Key, SchedulerState, TenantRec

TENANT_FIELDS: dict[str, type[float] | type[int]] = {"weight": float, "max_inflight": int}
POOL_FIELDS: dict[str, type[float] | type[int]] = {"slots": int, "workers": int}


class BadOverride(ValueError):
    """An override that is not `tenant.<name>.<weight|max_inflight>=V` or `pool.<name>.<slots|workers>=N`."""


@dataclass(frozen=True)
class Overrides:
    tenants: dict[str, dict[str, float]] = field(default_factory=dict)  # max_inflight holds an int
    pools: dict[str, dict[str, int]] = field(default_factory=dict)


def parse_overrides(items: Iterable[str]) -> Overrides:
    out = Overrides()
    for item in items:
        target, _, raw = item.partition("=")
        kind, _, rest = target.partition(".")
        name, _, attr = rest.rpartition(".")
        fields = TENANT_FIELDS if kind == "tenant" else POOL_FIELDS
        if kind not in ("tenant", "pool") or not name or attr not in fields or not raw:
            raise BadOverride(f"{item!r}: use tenant.<name>.<{'|'.join(TENANT_FIELDS)}>=V or "
                              f"pool.<name>.<{'|'.join(POOL_FIELDS)}>=N")
        try:
            value = fields[attr](raw)
        except ValueError as exc:
            raise BadOverride(f"{item!r}: {raw!r} is not a {fields[attr].__name__}") from exc
        if kind == "tenant":
            out.tenants.setdefault(name, {})[attr] = value
        else:
            out.pools.setdefault(name, {})[attr] = int(value)
    return out


@dataclass
class JobRecord:
    """What the model takes from one job's recorded history."""

    key: Key
    spec: JobSpec
    queued_at: datetime | None = None
    left_at: datetime | None = None  # cancelled or expired in the record
    dispatched_at: datetime | None = None  # its first dispatch in the record
    start_delay_s: float = 0.0
    run_s: float = 0.0
    _dispatch: datetime | None = None
    _start: datetime | None = None


@dataclass
class History:
    jobs: dict[Key, JobRecord] = field(default_factory=dict)
    tenants: list[ev.TenantConfigured] = field(default_factory=list)
    rounds: list[tuple[datetime, dict[str, Pool]]] = field(default_factory=list)


def record(log: Iterable[tuple[int, ev.Event]]) -> History:
    """The model's inputs from the log."""
    out = History()
    for _, event in log:
        if isinstance(event, ev.TenantConfigured):
            out.tenants.append(event)
        elif isinstance(event, ev.JobSubmitted):
            out.jobs[(event.tenant, event.job_id)] = JobRecord((event.tenant, event.job_id), event.spec)
        elif isinstance(event, ev.JobEvent) and (job := out.jobs.get((event.tenant, event.job_id))) is not None:
            _note(out, job, event)
    return out


def _note(out: History, job: JobRecord, event: ev.JobEvent) -> None:
    at = event.occurred_at
    if isinstance(event, ev.JobQueued) and job.queued_at is None:
        job.queued_at = at
    elif isinstance(event, ev.JobDispatched):
        job.dispatched_at = job.dispatched_at or at
        job._dispatch = at
        if event.why is not None and (not out.rounds or out.rounds[-1][0] != at):
            out.rounds.append((at, pools_of(event.why)[0]))
    elif isinstance(event, ev.JobStarted):
        job._start = at
        job.start_delay_s = (at - job._dispatch).total_seconds() if job._dispatch else 0.0
    elif isinstance(event, (ev.JobCancelled, ev.JobExpired)) and job._start is None:
        job.left_at = at
    if isinstance(event, (ev.JobSucceeded, ev.JobFailed, ev.JobTimedOut, ev.JobCancelled, ev.JobLost)) \
            and job._start is not None:
        job.run_s = max(0.0, (at - job._start).total_seconds())


@dataclass(frozen=True, slots=True)
class Moved:
    key: Key
    baseline: datetime | None
    what_if: datetime | None

    @property
    def delta_s(self) -> float | None:
        if self.baseline is None or self.what_if is None:
            return None
        return (self.what_if - self.baseline).total_seconds()


@dataclass
class Outcome:
    jobs: int
    earlier: int
    later: int
    unchanged: int
    moved: list[Moved]  # the jobs whose start changed, the largest change first
    by_tenant: dict[str, float]  # mean change of the start per tenant, seconds (negative: earlier)
    model_matches: int  # jobs whose first dispatch the model without overrides puts where the record has it
    recorded: int  # jobs dispatched in the record


def what_if(history: History, defaults: TenantLimits, overrides: Overrides) -> Outcome:
    """Run the model without and with `overrides`; compare each job's first dispatch."""
    baseline = simulate(history, defaults, Overrides())
    changed = simulate(history, defaults, overrides)
    moved = [Moved(k, baseline.get(k), changed.get(k)) for k in history.jobs
             if baseline.get(k) != changed.get(k)]
    moved.sort(key=lambda m: -abs(m.delta_s) if m.delta_s is not None else float("-inf"))
    deltas: dict[str, list[float]] = {}
    for m in moved:
        deltas.setdefault(m.key[0], []).append(m.delta_s or 0.0)
    recorded = [j for j in history.jobs.values() if j.dispatched_at is not None]
    return Outcome(
        jobs=len(history.jobs),
        earlier=sum(1 for m in moved if (m.delta_s or 0) < 0 or (m.baseline is None and m.what_if is not None)),
        later=sum(1 for m in moved if (m.delta_s or 0) > 0 or (m.what_if is None and m.baseline is not None)),
        unchanged=len(history.jobs) - len(moved),
        moved=moved,
        by_tenant={t: sum(d) / len(d) for t, d in sorted(deltas.items())},
        model_matches=sum(1 for j in recorded if _close(baseline.get(j.key), j.dispatched_at)),
        recorded=len(recorded),
    )


def _close(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and b is not None and abs((a - b).total_seconds()) <= 0.001


class _Model:
    """The modelled log: synthesized events folded by the real state; rounds planned by the real fair plan."""

    def __init__(self, history: History, defaults: TenantLimits, overrides: Overrides) -> None:
        self.history, self.overrides = history, overrides
        self.state = SchedulerState(defaults)
        for name, fields in overrides.tenants.items():
            self.state.tenants[name] = TenantRec(name, msgspec.structs.replace(defaults, **fields))
        self.seq = itertools.count(1)
        self.ids = map(str, itertools.count(1)).__next__
        self.agenda: list[tuple[datetime, int, str, Key | ev.Event]] = []
        self.order = itertools.count()
        self.dispatched: dict[Key, datetime] = {}
        self.round_times = [at for at, _ in history.rounds]

    def push(self, at: datetime, kind: str, what: Key | ev.Event) -> None:
        heapq.heappush(self.agenda, (at, next(self.order), kind, what))

    def apply(self, event: ev.Event) -> None:
        self.state.apply(next(self.seq), event)

    def pools(self, at: datetime) -> dict[str, Pool]:
        index = max(0, bisect.bisect_right(self.round_times, at) - 1)
        pools = self.history.rounds[index][1]
        out = {}
        for name, pool in pools.items():
            changed = self.overrides.pools.get(name, {})
            out[name] = replace(pool, slots=changed.get("slots", pool.slots),
                                workers=changed.get("workers", pool.workers))
        return out

    def run(self) -> dict[Key, datetime]:
        for tenant in self.history.tenants:
            fields = self.overrides.tenants.get(tenant.tenant, {})
            self.push(tenant.occurred_at, "event", msgspec.structs.replace(tenant, **fields))
        for job in self.history.jobs.values():
            if job.queued_at is not None:
                self.push(job.queued_at, "queue", job.key)
                if job.left_at is not None:
                    self.push(job.left_at, "leave", job.key)
        for at in self.round_times:
            self.push(at, "round", ("", ""))
        while self.agenda:
            now = self.agenda[0][0]
            while self.agenda and self.agenda[0][0] == now:
                _, _, kind, what = heapq.heappop(self.agenda)
                self.step(now, kind, what)
            self.plan(now)
        return self.dispatched

    def step(self, now: datetime, kind: str, what: Key | ev.Event) -> None:
        if isinstance(what, ev.Event):
            self.apply(what)
            return
        job = self.history.jobs.get(what)
        view = self.state.jobs.get(what)
        common: dict[str, Any] = {"event_id": self.ids(), "occurred_at": now, "tenant": what[0], "job_id": what[1]}
        if kind == "queue" and job is not None:
            self.apply(ev.JobSubmitted(**common, spec=job.spec))
            self.apply(ev.JobQueued(**common, pool=job.spec.resources.pool or ""))
        elif kind == "leave" and view is not None and view.state == "queued":
            self.apply(ev.JobCancelled(**common, attempt=view.attempt, detail="left the queue in the record"))
        elif kind == "start" and view is not None and view.state == "dispatched":
            self.apply(ev.JobStarted(**common, attempt=view.attempt, worker_id="model", sandbox="process"))
            self.push(now + timedelta(seconds=job.run_s if job else 0.0), "end", what)
        elif kind == "end" and view is not None and view.state == "running":
            self.apply(ev.JobSucceeded(**common, attempt=view.attempt))

    def plan(self, now: datetime) -> None:
        if not self.history.rounds:
            return
        picks = fairness.plan(self.state, self.pools(now), now, waiting=False).picks
        for intent in reconcile.dispatches(self.state, picks, now, self.ids):
            assert isinstance(intent, reconcile.Dispatch)
            self.apply(intent.event)
            key = intent.key
            self.dispatched.setdefault(key, now)
            job = self.history.jobs.get(key)
            self.push(now + timedelta(seconds=job.start_delay_s if job else 0.0), "start", key)


def simulate(history: History, defaults: TenantLimits, overrides: Overrides) -> dict[Key, datetime]:
    """When the model dispatches each job first."""
    return _Model(history, defaults, overrides).run()
