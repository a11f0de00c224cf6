"""The scheduler's projection writes rows that are a function of the log alone: the same rows whether the log is
folded in one batch or in any split of it, a batch folded again, and whatever the scheduler's working copy applied
early; and the working copy, which applies the scheduler's own appends at once, ends with the same jobs."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from simulate import WIDE_OPEN, Log, Sim, churn, dump_jobs, pool

from xrunner.contracts import events as ev
from xrunner.scheduler.projection import Rows, fold
from xrunner.scheduler.state import Key, SchedulerState
from xrunner.scheduler.store import jobs as store_jobs
from xrunner.scheduler.store import tenants as store_tenants

POOLS = {"default": pool(slots=6), "gpu": pool("gpu", gpu=2)}
OWN = (ev.JobQueued, ev.JobRejected, ev.JobDispatched, ev.JobCancelled, ev.JobLost, ev.JobExpired, ev.JobTimedOut,
       ev.JobRetryScheduled)  # what the scheduler appends


class Tables:
    """`scheduler.jobs` and `scheduler.tenants` as the named queries write them: a view only over an older version,
    a dispatch only over an older one, a tenant's row replaced."""

    def __init__(self) -> None:
        self.jobs: dict[Key, tuple[object, ...]] = {}
        self.dispatched: dict[Key, tuple[int, datetime]] = {}
        self.tenants: dict[str, tuple[object, ...]] = {}

    def write(self, rows: Rows) -> None:
        for view in rows.jobs:
            key, row = (view.tenant, view.id), store_jobs.row(view)
            if key not in self.jobs or self.jobs[key][7] < view.version:  # type: ignore[operator]
                self.jobs[key] = row
        for tenant, job_id, seq, at in rows.dispatches:
            key = (tenant, job_id)
            if key in self.jobs and self.dispatched.get(key, (0, at))[0] < seq:
                self.dispatched[key] = (seq, at)
        self.tenants.update((rec.name, store_tenants.row(rec)) for rec in rows.tenants)

    def dump(self) -> tuple[object, ...]:
        return sorted(self.jobs.items()), sorted(self.dispatched.items()), sorted(self.tenants.items())


def history(seed: int, steps: int) -> Log:
    """A busy little cluster's log: three tenants, retries, lost workers, cancels, rejections, time passing."""
    sim = Sim()
    churn(sim, random.Random(seed), steps, POOLS, ("a", "b", "c"))
    return sim.log


def working_order(log: Log, rng: random.Random) -> list[tuple[int, ev.Event, bool]]:
    """What the working copy applies, in order: every event as the projector delivers it (in log order, True) and,
    earlier, each of the scheduler's own appends at once (False) — at any point after the job's previous event (the
    append was decided on a view that had it: compare-and-set)."""
    early: dict[int, list[tuple[int, ev.Event, bool]]] = {}
    last: dict[Key, int] = {}
    for index, (seq, event) in enumerate(log):
        if not isinstance(event, ev.JobEvent):
            continue
        key = (event.tenant, event.job_id)
        if isinstance(event, OWN):
            early.setdefault(rng.randint(last.get(key, -1) + 1, index), []).append((seq, event, False))
        last[key] = index
    return [item for index, (seq, event) in enumerate(log) for item in [*early.get(index, []), (seq, event, True)]]


def batches(log: Log, cuts: Iterable[float]) -> list[Log]:
    bounds = sorted({0, len(log), *(int(c * len(log)) for c in cuts)})
    return [log[start:end] for start, end in itertools.pairwise(bounds)]


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32), steps=st.integers(1, 30), cuts=st.lists(st.floats(0, 1), max_size=8),
       again=st.lists(st.booleans(), max_size=9))
def test_the_rows_are_the_same_however_the_log_is_batched_and_whatever_the_scheduler_applied_early(
    seed: int, steps: int, cuts: list[float], again: list[bool]
) -> None:
    log = history(seed, steps)
    rebuilt = Tables()
    rebuilt.write(fold(SchedulerState(WIDE_OPEN), log))

    projected, working, live = SchedulerState(WIDE_OPEN), SchedulerState(WIDE_OPEN), Tables()
    order = iter(working_order(log, random.Random(seed)))
    for number, batch in enumerate(batches(log, cuts)):
        for seq, event, delivered in order:  # the working copy, running ahead with the scheduler's own appends
            working.apply(seq, event)
            if delivered and seq == batch[-1][0]:
                break
        live.write(fold(projected, batch))
        if number < len(again) and again[number]:  # folded again: a projection applies a batch at least once
            live.write(fold(projected, batch))
    assert live.dump() == rebuilt.dump()
    assert dump_jobs(working) == dump_jobs(projected)
    assert working.dispatches == projected.dispatches
