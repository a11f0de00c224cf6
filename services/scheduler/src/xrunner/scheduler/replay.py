"""Re-runs the scheduler's fair plan over the inputs its dispatches recorded in the log, and diffs the outcome with
the recorded decisions. Pure: the caller reads the log.

Each `job.dispatched` carries `why` (contracts/decisions.py): the round's pools with their free slots, its basis (the
log position the scheduler's state had folded), and the pick's rank in its round. The replay folds the log the way
the active scheduler's working copy does: its own decisions, submissions and tenant configurations as soon as they
are in the log, everything else (workers' events and cancel requests) once a round's basis has passed it, or once
the scheduler decided on a job after it (its decision shows it had folded them). At the first
recorded dispatch of each round it plans on that state with the recorded pools and `now` = the event's time, and
compares its picks, rank by rank, with the recorded ones. A rank missing from the record is an append that lost
its compare-and-set (the live scheduler reloaded the job); it is not a difference.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from xrunner.contracts import events as ev
from xrunner.contracts.decisions import DispatchWhy
from xrunner.contracts.stats import TenantLimits
from xrunner.scheduler import fairness
from xrunner.scheduler.placement import Pool
from xrunner.scheduler.state import Key, SchedulerState

Log = Iterable[tuple[int, ev.Event]]
Picked = tuple[Key, str]  # the job and the pool

SCHEDULER_WRITES = (ev.JobQueued, ev.JobRejected, ev.JobDispatched, ev.JobRetryScheduled, ev.JobExpired, ev.JobLost)
FEED = (ev.JobSubmitted, ev.TenantConfigured)


@dataclass(frozen=True, slots=True)
class Difference:
    """A rank of a round where the replayed plan and the record disagree (None: that side has no pick there)."""

    at: datetime
    basis: int
    rank: int
    recorded: Picked | None
    replayed: Picked | None


@dataclass
class Verification:
    rounds: int = 0
    decisions: int = 0
    unexplained: int = 0  # dispatches recorded without `why` (written before it existed): not replayed
    lost_appends: int = 0  # replayed picks whose recorded append lost its compare-and-set
    differences: list[Difference] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences


def pools_of(why: DispatchWhy) -> tuple[dict[str, Pool], dict[str, int]]:
    """The pools (shape, workers, slots) and their free slots as the round saw them."""
    pools = {p.pool: Pool(p.pool, p.workers, p.slots, p.cpu_millis, p.memory_mib, p.gpu, frozenset(p.workloads))
             for p in why.pools}
    return pools, {p.pool: p.free for p in why.pools}


def immediate(state: SchedulerState, event: ev.Event) -> bool:
    """Whether the working copy holds `event` as soon as it is in the log: the scheduler's own appends (applied when
    they land) and what the live feed brings (submissions, tenants); the rest comes with the projection's batches."""
    if isinstance(event, SCHEDULER_WRITES + FEED):
        return True
    if isinstance(event, ev.JobFailed):
        return event.abandoned
    if isinstance(event, ev.JobCancelled):  # the scheduler's when the job had not been dispatched
        view = state.jobs.get((event.tenant, event.job_id))
        return view is not None and view.state in ("submitted", "queued")
    return False


@dataclass
class _Round:
    at: datetime
    basis: int
    planned: dict[int, Picked]  # by rank, until a recorded dispatch takes it
    recorded_picks: int  # how many picks the live plan made
    counted: bool  # after `since`


class Replayer:
    """Folds a log as the working copy did and replans each recorded round."""

    def __init__(self, defaults: TenantLimits, since: int = 0) -> None:
        self.state = SchedulerState(defaults)
        self.since = since
        self.deferred: deque[tuple[int, ev.Event]] = deque()
        self.deferred_jobs: dict[Key, int] = {}  # each job's latest deferred event
        self.rounds: dict[tuple[datetime, int], _Round] = {}
        self.result = Verification()

    def feed(self, seq: int, event: ev.Event) -> None:
        if isinstance(event, ev.JobDispatched) and event.why is not None:
            self._recorded(seq, event, event.why)
        elif isinstance(event, ev.JobDispatched) and seq > self.since:
            self.result.unexplained += 1
        key = (event.tenant, event.job_id) if isinstance(event, ev.JobEvent) else None
        if key in self.deferred_jobs and immediate(self.state, event):
            # The scheduler decided on this job's earlier events, so the batch that brought them had been folded.
            self._catch_up(self.deferred_jobs[key])
        if immediate(self.state, event):
            self.state.apply(seq, event)
            return
        self.deferred.append((seq, event))
        if key is not None:
            self.deferred_jobs[key] = seq

    def _recorded(self, seq: int, event: ev.JobDispatched, why: DispatchWhy) -> None:
        key = (event.occurred_at, why.basis)
        found = self.rounds.get(key)
        if found is None:
            found = self.rounds[key] = _Round(event.occurred_at, why.basis, self._plan(event.occurred_at, why),
                                              why.picks, seq > self.since)
            self.result.rounds += found.counted
        if not found.counted:
            return
        self.result.decisions += 1
        replayed = found.planned.pop(why.rank, None)
        recorded = ((event.tenant, event.job_id), event.pool)
        if replayed != recorded:
            self.result.differences.append(Difference(event.occurred_at, why.basis, why.rank, recorded, replayed))

    def _plan(self, now: datetime, why: DispatchWhy) -> dict[int, Picked]:
        self._catch_up(why.basis)
        pools, free = pools_of(why)
        plan = fairness.plan(self.state, pools, now, round_free=free, explain=False, waiting=False)
        return {rank: (pick.key, pick.pool) for rank, pick in enumerate(plan.picks, 1)}

    def _catch_up(self, basis: int) -> None:
        """Apply what the projection had folded by `basis` (in log order; its own events again are no-ops)."""
        while self.deferred and self.deferred[0][0] <= basis:
            seq, event = self.deferred.popleft()
            self.state.apply(seq, event)
            if isinstance(event, ev.JobEvent) and self.deferred_jobs.get(key := (event.tenant, event.job_id)) == seq:
                del self.deferred_jobs[key]

    def finish(self) -> Verification:
        """The replayed picks no recorded dispatch took: appends that lost their compare-and-set when the live plan
        made as many picks as the replay (ranks up to its count), differences otherwise."""
        for found in self.rounds.values():
            if not found.counted:
                continue
            for rank, picked in sorted(found.planned.items()):
                if rank <= found.recorded_picks:
                    self.result.lost_appends += 1
                else:
                    self.result.differences.append(Difference(found.at, found.basis, rank, None, picked))
        return self.result


def verify(log: Log, defaults: TenantLimits, since: int = 0) -> Verification:
    """Replay every recorded round of `log` (from sequence 1: the state needs the whole prefix) and compare the
    decisions after `since`."""
    replayer = Replayer(defaults, since)
    for seq, event in log:
        replayer.feed(seq, event)
    return replayer.finish()
