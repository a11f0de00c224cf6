"""The scheduler's state: every live job and every tenant, folded from the log. Pure (no I/O, no clock).

The active scheduler keeps two: the projection's, folded from the log in order and nothing else (a function of the
events up to its position, mirrored into Postgres, which a rebuild reproduces byte for byte), and its working
copy, which also applies the scheduler's own appends at once, in whatever order they land, so that its next decision
already sees them. Every time-based value (the submit bucket's refill, the decay of usage) is computed at the
events' own `occurred_at`. Folding is idempotent: a job's events count once (`JobView.version`), and so do the
bucket's spends and the usage's charges, which follow from a job's events being applied.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from xrunner.contracts import events as ev
from xrunner.contracts import lifecycle
from xrunner.contracts.api import JobView
from xrunner.contracts.policy import Bucket, refill
from xrunner.contracts.stats import TenantLimits

Key = tuple[str, str]
USAGE_HALF_LIFE_S = 300.0
FINISHED_KEPT = 200_000


def _ended(history: list[tuple[int, ev.Event]], attempt: int) -> datetime | None:
    """When attempt `attempt` stopped running, from the job's history."""
    ends = (ev.JobSucceeded, ev.JobFailed, ev.JobTimedOut, ev.JobCancelled, ev.JobLost)
    return next((e.occurred_at for _, e in history if isinstance(e, ends) and e.attempt == attempt), None)


@dataclass
class Usage:
    """Resource-seconds a tenant used recently (cpu millis·s, MiB·s, GPU·s), decayed with a half-life."""

    cpu: float = 0.0
    memory: float = 0.0
    gpu: float = 0.0
    at: datetime | None = None

    def decayed(self, now: datetime, half_life_s: float = USAGE_HALF_LIFE_S) -> Usage:
        if self.at is None or now <= self.at:
            return Usage(self.cpu, self.memory, self.gpu, self.at or now)
        factor = _decay(now - self.at, half_life_s)
        return Usage(self.cpu * factor, self.memory * factor, self.gpu * factor, now)

    def plus(self, cpu: float, memory: float, gpu: float, at: datetime) -> Usage:
        """This usage with resource-seconds used until `at` added, both decayed to the later of the two times: sums
        in any order agree (a run's end folded after a later one's is decayed to that one's time, not added whole)."""
        mine = self.decayed(at)
        factor = _decay(mine.at - at, USAGE_HALF_LIFE_S) if mine.at is not None else 1.0
        return Usage(mine.cpu + cpu * factor, mine.memory + memory * factor, mine.gpu + gpu * factor, mine.at)


def _decay(elapsed: timedelta, half_life_s: float) -> float:
    return 0.5 ** (elapsed.total_seconds() / half_life_s)


@dataclass
class TenantRec:
    name: str
    limits: TenantLimits
    bucket: Bucket = field(default_factory=lambda: Bucket(0.0, None))
    usage: Usage = field(default_factory=Usage)
    config_seq: int = 0
    bucket_seq: int = 0


class SchedulerState:
    def __init__(self, defaults: TenantLimits) -> None:
        self.defaults = defaults
        self.jobs: dict[Key, JobView] = {}
        self.tenants: dict[str, TenantRec] = {}
        # Jobs that ended recently: a batch folded again (a failed transaction's redelivery) must not bring them
        # back or charge their run twice. Bounded: redeliveries are recent by nature.
        self.finished: OrderedDict[Key, None] = OrderedDict()
        # The sequence and time of each live job's latest dispatch: the fence a re-released work item carries.
        self.dispatches: dict[Key, tuple[int, datetime]] = {}

    def tenant(self, name: str) -> TenantRec:
        rec = self.tenants.get(name)
        if rec is None:
            rec = self.tenants[name] = TenantRec(name, self.defaults)
        return rec

    def apply(self, seq: int, event: ev.Event) -> JobView | None:
        """Fold one event; returns the job it touched (None for tenant events or unknown jobs)."""
        if isinstance(event, ev.TenantConfigured):
            self._configure(seq, event)
            return None
        if not isinstance(event, ev.JobEvent):
            return None
        key = (event.tenant, event.job_id)
        if key in self.finished:
            return None
        before = self.jobs.get(key)
        was_running = before is not None and before.state == "running"
        started_at, version = (before.started_at, before.version) if before is not None else (None, 0)
        view = lifecycle.fold(before, event, seq)  # updates `before` in place
        if view is None:
            return None
        if version < seq == view.version:  # this event changed the job (and no copy of it did before)
            self._applied(key, seq, event)
        if was_running and view.state != "running" and started_at is not None:
            self._charge(view, started_at, event.occurred_at)
        self._keep(key, view)
        return view

    def _applied(self, key: Key, seq: int, event: ev.JobEvent) -> None:
        """What an applied event changes besides the job: its dispatch fence, its tenant's submit bucket."""
        if isinstance(event, ev.JobDispatched):
            self.dispatches[key] = (seq, event.occurred_at)
        elif isinstance(event, ev.JobQueued) and event.attempt == 0:
            self._spend_token(seq, event)

    def _keep(self, key: Key, view: JobView) -> None:
        if lifecycle.is_terminal(view.state):
            self.jobs.pop(key, None)
            self.dispatches.pop(key, None)
            self.finished[key] = None
            if len(self.finished) > FINISHED_KEPT:
                self.finished.popitem(last=False)
        else:
            self.jobs[key] = view

    def _configure(self, seq: int, event: ev.TenantConfigured) -> None:
        rec = self.tenant(event.tenant)
        if seq > rec.config_seq:
            rec.limits = TenantLimits.from_event(event)
            rec.config_seq = seq

    def _spend_token(self, seq: int, event: ev.JobQueued) -> None:
        rec = self.tenant(event.tenant)
        full = refill(rec.bucket, rec.limits.submit_rate_per_s, event.occurred_at)
        at = max(event.occurred_at, rec.bucket.at) if rec.bucket.at else event.occurred_at  # never credit twice
        rec.bucket = Bucket(full.tokens - 1.0, at)
        rec.bucket_seq = max(rec.bucket_seq, seq)

    def _charge(self, view: JobView, started_at: datetime, ended_at: datetime) -> None:
        """Add an attempt's resource-seconds to its tenant's decayed usage (in whatever order runs are charged: the
        working copy applies its own appends at once, so a run's end may be folded after a later one's)."""
        rec = self.tenant(view.tenant)
        seconds = max(0.0, (ended_at - started_at).total_seconds())
        res = view.spec.resources
        rec.usage = rec.usage.plus(res.cpu_millis * seconds, res.memory_mib * seconds, res.gpu * seconds, ended_at)

    def load(self, views: list[JobView], tenants: list[TenantRec],
             dispatches: dict[Key, tuple[int, datetime]] | None = None) -> None:
        """Start from a projection snapshot (non-terminal jobs, every tenant, the live jobs' dispatches)."""
        self.jobs = {(v.tenant, v.id): v for v in views if not lifecycle.is_terminal(v.state)}
        self.dispatches = {k: d for k, d in (dispatches or {}).items() if k in self.jobs}
        self.finished.clear()
        self.tenants = {t.name: t for t in tenants}

    def reload_job(self, history: list[tuple[int, ev.Event]]) -> JobView | None:
        """Replace one job's view by the fold of its full history (after losing a compare-and-set). Its version, the
        `expect` of the next compare-and-set, is the history's last sequence: events the fold passes over (an
        artifact's preview, an attach) still move the job's subject, and a version left before them lost every
        later race again, for good (a lost worker's job stayed `running` after its logs.txt was previewed)."""
        view = lifecycle.replay(history)
        if view is None:
            return None
        view.version = max(view.version, history[-1][0])
        key = (view.tenant, view.id)
        before = self.jobs.get(key)
        if before is not None and before.state == "running" and before.started_at is not None and (
            view.state != "running" or view.attempt != before.attempt
        ):
            self._charge(view, before.started_at, _ended(history, before.attempt) or view.updated_at)
        self._keep(key, view)
        return view
