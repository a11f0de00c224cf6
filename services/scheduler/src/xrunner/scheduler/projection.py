"""The scheduler's projection: folds the log, in order and nothing else, into its own state and mirrors the touched
jobs and tenants into Postgres (so a new leader starts from there, and a rebuild can be compared with the live
tables). The rows are a function of the events up to the committed position alone: the active scheduler's own
appends reach its working state, never this one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from xrunner.contracts import subjects
from xrunner.contracts.api import JobView
from xrunner.contracts.events import Event, JobDispatched, JobEvent, TenantConfigured
from xrunner.contracts.stats import TenantLimits
from xrunner.scheduler.state import Key, SchedulerState, TenantRec
from xrunner.scheduler.store import jobs as store_jobs
from xrunner.scheduler.store import tenants as store_tenants
from xrunner.servicekit.projector import position


@dataclass(frozen=True, slots=True)
class Rows:
    """What one folded batch writes: the touched jobs' views, the dispatches' fences, the touched tenants."""

    jobs: list[JobView]
    dispatches: list[store_jobs.Dispatch]
    tenants: list[TenantRec]


def fold(state: SchedulerState, batch: Sequence[tuple[int, Event]]) -> Rows:
    """Fold `batch` into `state` and return the rows it changes. Pure."""
    jobs: dict[Key, JobView] = {}
    dispatches: list[store_jobs.Dispatch] = []
    tenants: set[str] = set()
    for seq, event in batch:
        view = state.apply(seq, event)
        if view is not None:
            jobs[(view.tenant, view.id)] = view
        if isinstance(event, JobDispatched):
            dispatches.append((event.tenant, event.job_id, seq, event.occurred_at))
        if isinstance(event, (JobEvent, TenantConfigured)):
            tenants.add(event.tenant)
    return Rows(list(jobs.values()), dispatches, [state.tenant(t) for t in sorted(tenants)])


async def load_state(conn: asyncpg.Connection, defaults: TenantLimits) -> SchedulerState:
    """A state from the projection's rows (the live jobs, every tenant, the live jobs' dispatches)."""
    state = SchedulerState(defaults)
    state.load(await store_jobs.live(conn), await store_tenants.load(conn, defaults), await store_jobs.dispatches(conn))
    return state


class SchedulerProjection:
    name = "scheduler.jobs"
    filter_subjects = (subjects.JOB_EVENTS_ALL, subjects.tenant_events())

    def __init__(self, defaults: TenantLimits, listener: Listener | None = None) -> None:
        self.state, self.listener = SchedulerState(defaults), listener
        self.through = -1  # the position `state` is the fold of (-1: not loaded yet)

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]]) -> None:
        committed = await position(conn, self.name)
        if committed != self.through:
            # Not loaded yet, or the rows moved without this state (its last batch did not commit; a deposed
            # scheduler's projector wrote): start from the committed rows.
            self.state, self.through = await load_state(conn, self.state.defaults), committed
        try:
            rows = fold(self.state, batch)
            await store_jobs.upsert(conn, rows.jobs, rows.dispatches)
            await store_tenants.upsert(conn, rows.tenants)
        except BaseException:
            # The state now holds a fold the rows do not (an event Postgres refused is parked and passed by the
            # position without this state): start from the rows next time.
            self.through = -1
            raise
        self.through = batch[-1][0]
        if self.listener is not None:
            self.listener.folded(batch)


class Listener(Protocol):
    """Who reacts to what the projection folded (the active scheduler, folding it into its working state)."""

    def folded(self, batch: Sequence[tuple[int, Event]]) -> None: ...
