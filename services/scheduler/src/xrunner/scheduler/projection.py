"""The scheduler's projection: folds the log into its working state and mirrors touched jobs and tenants into
Postgres (so a new leader starts from there, and a rebuild can be compared with the live tables)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import asyncpg

from xrunner.contracts import subjects
from xrunner.contracts.api import JobView
from xrunner.contracts.events import Event, JobDispatched, JobEvent, JobStarted, TenantConfigured
from xrunner.scheduler.state import SchedulerState
from xrunner.scheduler.store import jobs as store_jobs
from xrunner.scheduler.store import tenants as store_tenants
from xrunner.servicekit import jobviews


class SchedulerProjection:
    name = "scheduler.jobs"
    filter_subjects = (subjects.JOB_EVENTS_ALL, subjects.tenant_events())

    def __init__(self, state: SchedulerState, listener: Listener | None = None) -> None:
        self.state, self.listener = state, listener

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]]) -> None:
        jobs: dict[tuple[str, str], JobView] = {}
        dispatches: list[store_jobs.Dispatch] = []
        tenants: set[str] = set()
        started: list[tuple[JobStarted, JobView]] = []
        ended: list[tuple[int, Event]] = []
        for seq, event in batch:
            view = self.state.apply(seq, event)
            if view is None and isinstance(event, JobEvent) and (event.tenant, event.job_id) in self.state.finished:
                ended.append((seq, event))
            if isinstance(event, JobStarted) and view is not None and view.state == "running":
                started.append((event, view))
            if isinstance(event, JobDispatched):
                dispatches.append((event.tenant, event.job_id, seq, event.occurred_at))
            if view is not None:
                jobs[(view.tenant, view.id)] = view
            if isinstance(event, (JobEvent, TenantConfigured)):
                tenants.add(event.tenant)
        ended_views = await _ended_rows(conn, ended, jobs)
        await store_jobs.upsert(conn, [*jobs.values(), *ended_views], dispatches)
        await store_tenants.upsert(conn, [self.state.tenant(t) for t in sorted(tenants)])
        if self.listener is not None:
            self.listener.folded(list(jobs.values()), started)


async def _ended_rows(
    conn: asyncpg.Connection, ended: list[tuple[int, Event]], folded: dict[tuple[str, str], JobView]
) -> list[JobView]:
    """The working state forgets a job once it ended, and it can end there before its events are committed here
    (the scheduler's own appends, a batch folded again after its transaction failed): fold those events into the
    committed rows instead, so the table still reaches every job's final state."""
    behind = [(seq, e) for seq, e in ended if isinstance(e, JobEvent) and (e.tenant, e.job_id) not in folded]
    views = await jobviews.fold_batch(conn, behind)
    return [view for view in views.values() if view is not None]


class Listener(Protocol):
    """Who reacts to what the projection folded (the active scheduler)."""

    def folded(self, views: list[JobView], started: list[tuple[JobStarted, JobView]]) -> None: ...

