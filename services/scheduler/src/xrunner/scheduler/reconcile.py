"""Decides what the active scheduler does next from its working state, the live workers and `now`: admit or reject
submissions, cancel queued jobs, schedule retries, give up lost attempts, expire and time out jobs, re-release
dispatched attempts nobody started, and dispatch by the fair plan. Pure: ids and times are arguments; each intent
carries the event to append and why (the loop appends them with compare-and-set, and publishes).

A job gets at most one decision per round. A round that changes any job leaves dispatch to the next round, which
plans on the state with those changes applied (their new versions are what a dispatch must compare against).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import ClassVar, Literal, Protocol, TypeVar

import msgspec

from xrunner.contracts import events as ev
from xrunner.contracts.api import JobView
from xrunner.contracts.messages import WorkerHeartbeat
from xrunner.contracts.policy import Admitted, Bucket, admit, backoff_s
from xrunner.scheduler import fairness, placement
from xrunner.scheduler.state import Key, SchedulerState

RUNNING_LIST_GRACE_S = 3.0  # a few heartbeats: how long a worker may take to list an attempt it started

Ids = Callable[[], str]
E = TypeVar("E", bound=ev.JobEvent)


class Rules(Protocol):
    """The settings reconcile reads (the scheduler's settings have them)."""

    @property
    def max_queued_total(self) -> int: ...
    @property
    def timeout_grace_s(self) -> float: ...
    @property
    def redispatch_after_s(self) -> float: ...
    @property
    def decide_after_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Round:
    """What the loop knows besides the state: which jobs the log just changed, whether deadlines and liveness are
    due, whether the scheduler has been active long enough to trust a missing heartbeat, how fast queues drain
    (for Retry-After), and when it last re-released each dispatched attempt."""

    dirty: Collection[Key] = ()
    sweep: bool = False
    settled: bool = False
    drain_rate_per_s: float = 1.0
    rereleased: Mapping[Key, datetime] = field(default_factory=dict)
    basis: int = 0  # the log position the state had folded (recorded in each dispatch's `why`)


@dataclass(frozen=True, slots=True)
class Append:
    """Append `event` if the job's history is still at version `expect`; `why` says what decided it."""

    kind: ClassVar[str] = ""
    event: ev.JobEvent
    expect: int
    why: str

    @property
    def key(self) -> Key:
        return (self.event.tenant, self.event.job_id)

    @property
    def msg_id(self) -> str:
        """Deduplicates the append per job, attempt and kind (a decision taken twice is appended once)."""
        return f"{self.event.job_id}:{self.event.attempt}:{self.kind}"


@dataclass(frozen=True, slots=True)
class Admit(Append):
    kind = "queued"
    event: ev.JobQueued


@dataclass(frozen=True, slots=True)
class Reject(Append):
    kind = "rejected"
    event: ev.JobRejected


@dataclass(frozen=True, slots=True)
class Cancel(Append):
    kind = "cancelled"
    event: ev.JobCancelled


@dataclass(frozen=True, slots=True)
class ScheduleRetry(Append):
    kind = "retry_scheduled"
    event: ev.JobRetryScheduled


@dataclass(frozen=True, slots=True)
class Lose(Append):
    kind = "lost"
    event: ev.JobLost


@dataclass(frozen=True, slots=True)
class Expire(Append):
    kind = "expired"
    event: ev.JobExpired


@dataclass(frozen=True, slots=True)
class TimeOut(Append):
    kind = "timed_out"
    event: ev.JobTimedOut


@dataclass(frozen=True, slots=True)
class Dispatch(Append):
    kind = "dispatched"
    event: ev.JobDispatched


@dataclass(frozen=True, slots=True)
class Rerelease:
    """Publish the work item of a dispatched attempt again (no append: the attempt is unchanged)."""

    key: Key
    attempt: int
    why: str


Intent = Admit | Reject | Cancel | ScheduleRetry | Lose | Expire | TimeOut | Dispatch | Rerelease


def reconcile(
    state: SchedulerState,
    heartbeats: Iterable[WorkerHeartbeat],
    now: datetime,
    rules: Rules,
    inputs: Round,
    ids: Ids,
) -> list[Intent]:
    """The intents of one round: decisions on the dirty jobs (and, when the sweep is due, on every job that has
    awaited one too long), then (when due) deadlines, liveness and re-releases, then, if no job changed, the
    dispatches of the fair plan."""
    beats = list(heartbeats)
    if inputs.sweep:
        inputs = replace(inputs, dirty={*inputs.dirty, *overdue(state, now, rules)})
    decided = react(state, inputs, now, rules, ids)
    if inputs.sweep:
        taken = {i.key for i in decided}
        decided += [i for i in sweep(state, beats, inputs, now, rules, ids) if i.key not in taken]
    if any(isinstance(i, Append) for i in decided):
        return decided
    plan = fairness.plan(state, placement.pools_from(beats), now, waiting=False)
    return decided + dispatches(state, plan.picks, now, ids, inputs.basis)


def react(state: SchedulerState, inputs: Round, now: datetime, rules: Rules, ids: Ids) -> list[Intent]:
    """Decide for the jobs the log just changed, in id order: admissions carry queue counts and rate buckets over
    from one decision to the next."""
    counts = queued_counts(state)
    buckets: dict[str, Bucket] = {}
    out: list[Intent] = []
    for key in sorted(inputs.dirty, key=lambda k: k[1]):
        view = state.jobs.get(key)
        awaits = None if view is None else awaited(view)
        if view is None or awaits is None:
            continue
        if awaits == "admission":
            out.append(_admit(state, view, counts, buckets, now, rules, inputs.drain_rate_per_s, ids))
        elif awaits == "cancel":
            out.append(Cancel(_event(view, ev.JobCancelled, now, ids, detail="cancelled while queued"),
                              view.version, "a cancel was requested before the job started"))
        else:
            out.append(_retry(view, now, ids))
    return out


def awaited(view: JobView) -> Literal["admission", "cancel", "retry"] | None:
    """The decision a job awaits from the scheduler: admission of a submission, the cancel of a job that has not
    started, the backoff of a failed attempt's retry; None when it awaits none (or another's: a worker's)."""
    if view.cancel_requested and view.state in ("submitted", "queued"):
        return "cancel"
    if view.state == "submitted":
        return "admission"
    if view.state == "queued" and view.reason == "backoff" and view.not_before is None:
        return "retry"
    return None


def overdue(state: SchedulerState, now: datetime, rules: Rules) -> list[Key]:
    """The jobs that have awaited a decision for `decide_after_s` or longer: the log changed them and no decision
    followed (the scheduler died between folding and deciding, a standby took over, an append failed). Nothing
    accepted waits for a decision forever: the sweep decides them as if the log had just changed them."""
    return [key for key, view in state.jobs.items()
            if awaited(view) is not None and (now - view.updated_at).total_seconds() >= rules.decide_after_s]


def queued_counts(state: SchedulerState) -> dict[str, int]:
    counts: dict[str, int] = {}
    for view in state.jobs.values():
        if view.state == "queued":
            counts[view.tenant] = counts.get(view.tenant, 0) + 1
    return counts


def _admit(state: SchedulerState, view: JobView, counts: dict[str, int], buckets: dict[str, Bucket],
           now: datetime, rules: Rules, drain_rate_per_s: float, ids: Ids) -> Admit | Reject:
    tenant = state.tenant(view.tenant)
    decision = admit(tenant.limits, counts.get(view.tenant, 0), sum(counts.values()), rules.max_queued_total,
                     buckets.get(view.tenant, tenant.bucket), now, drain_rate_per_s)
    if isinstance(decision, Admitted):
        buckets[view.tenant] = decision.bucket
        counts[view.tenant] = counts.get(view.tenant, 0) + 1
        event = _event(view, ev.JobQueued, now, ids, pool=view.spec.resources.pool or "",
                       position=counts[view.tenant])
        return Admit(event, view.version, f"admitted: position {counts[view.tenant]} in the tenant's queue")
    rejected = _event(view, ev.JobRejected, now, ids, cause=decision.cause, scope=decision.scope,
                      retry_after_s=decision.retry_after_s, detail=decision.detail)
    return Reject(rejected, view.version, decision.detail)


def _retry(view: JobView, now: datetime, ids: Ids) -> ScheduleRetry:
    """The failed attempt's retry waits its backoff; the jitter is a hash of the attempt, so a replay agrees."""
    jitter = (zlib.crc32(f"{view.id}:{view.attempt}".encode()) % 1000) / 1000
    delay = backoff_s(view.spec.retry, view.retries_used - 1, jitter)
    event = _event(view, ev.JobRetryScheduled, now, ids, not_before=now + timedelta(seconds=delay),
                   reason=view.reason or "")
    return ScheduleRetry(event, view.version, f"retry {view.retries_used} waits {delay:g}s of backoff")


def sweep(state: SchedulerState, heartbeats: Iterable[WorkerHeartbeat], inputs: Round, now: datetime,
          rules: Rules, ids: Ids) -> list[Intent]:
    """Deadlines and liveness over every live job: lost workers, queue timeouts, the execution-timeout backstop,
    and dispatched attempts nobody started."""
    beats = {w.worker_id: w for w in heartbeats}
    out: list[Intent] = []
    for view in state.jobs.values():
        intent = _deadline(state, view, beats, inputs, now, rules, ids)
        if intent is not None:
            out.append(intent)
    return out


def _deadline(state: SchedulerState, view: JobView, beats: Mapping[str, WorkerHeartbeat], inputs: Round,
              now: datetime, rules: Rules, ids: Ids) -> Intent | None:
    spec = view.spec
    if view.state == "running" and inputs.settled and attempt_lost(view, beats.get(view.worker_id or "")):
        why = "the worker stopped heartbeating"
        return Lose(_event(view, ev.JobLost, now, ids, worker_id=view.worker_id or "", detail=why), view.version, why)
    if view.state == "queued" and spec.queue_timeout_s and view.queued_at is not None:
        waited = (now - view.queued_at).total_seconds()
        if waited > spec.queue_timeout_s:
            return Expire(_event(view, ev.JobExpired, now, ids, waited_s=round(waited, 3)), view.version,
                          f"queued {waited:.3f}s, over its queue timeout of {spec.queue_timeout_s}s")
    if view.state == "running" and view.started_at is not None:
        ran = (now - view.started_at).total_seconds()
        if ran > spec.timeout_s + rules.timeout_grace_s:
            return TimeOut(_event(view, ev.JobTimedOut, now, ids, timeout_s=spec.timeout_s), view.version,
                           f"running {ran:.3f}s, over its timeout of {spec.timeout_s}s and the grace")
    if view.state == "dispatched":
        return _rerelease(state, view, inputs, now, rules)
    return None


def attempt_lost(view: JobView, beat: WorkerHeartbeat | None) -> bool:
    """A running attempt is lost when its worker stopped heartbeating (`heartbeats` hold the workers heard from
    within lease + margin: by then the worker's reaper has killed the attempt's processes, at lease - margin), or
    when the worker heartbeats without listing it well after it started (the process died and a new one took over
    its id, or the reaper fenced it and the worker resumed)."""
    if beat is None:
        return True
    if view.id in beat.running or beat.at is None or view.started_at is None:
        return False
    return (beat.at - view.started_at).total_seconds() > RUNNING_LIST_GRACE_S


def _rerelease(state: SchedulerState, view: JobView, inputs: Round, now: datetime, rules: Rules) -> Rerelease | None:
    """An attempt dispatched long ago and not started: the scheduler may have died between appending
    `job.dispatched` and publishing it. A copy that did go out is dropped by the stream's duplicate window, and the
    worker's fence makes any later copy harmless. At most once per `redispatch_after_s` per job."""
    key = (view.tenant, view.id)
    dispatch = state.dispatches.get(key)
    if dispatch is None or (now - dispatch[1]).total_seconds() < rules.redispatch_after_s:
        return None
    last = inputs.rereleased.get(key)
    if last is not None and (now - last).total_seconds() < rules.redispatch_after_s:
        return None
    return Rerelease(key, view.attempt, f"dispatched at {dispatch[1].isoformat()} and not started")


def dispatches(state: SchedulerState, picks: Iterable[fairness.Pick], now: datetime, ids: Ids,
               basis: int = 0) -> list[Intent]:
    """`job.dispatched` (the next attempt) for each pick of the fair plan that is still queued, with its why."""
    out: list[Intent] = []
    picked = list(picks)
    for rank, pick in enumerate(picked, 1):
        view = state.jobs.get(pick.key)
        if view is None or view.state != "queued":
            continue
        why = None if pick.why is None else msgspec.structs.replace(pick.why, basis=basis, rank=rank,
                                                                     picks=len(picked))
        event = _event(view, ev.JobDispatched, now, ids, attempt=view.attempt + 1, pool=pick.pool,
                       retries_used=view.retries_used, why=why)
        out.append(Dispatch(event, view.version, f"the fair plan picked it for pool {pick.pool}"))
    return out


def _event(view: JobView, cls: type[E], now: datetime, ids: Ids, *, attempt: int | None = None,
           **fields: object) -> E:
    return cls(event_id=ids(), occurred_at=now, tenant=view.tenant, job_id=view.id,
               attempt=view.attempt if attempt is None else attempt, **fields)
