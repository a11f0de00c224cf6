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
        for seq, event in batch:
            view = self.state.apply(seq, event)
            if isinstance(event, JobStarted) and view is not None and view.state == "running":
                started.append((event, view))
            if isinstance(event, JobDispatched):
                dispatches.append((event.tenant, event.job_id, seq, event.occurred_at))
            if view is not None:
                jobs[(view.tenant, view.id)] = view
            if isinstance(event, (JobEvent, TenantConfigured)):
                tenants.add(event.tenant)
        await store_jobs.upsert(conn, jobs.values(), dispatches)
        await store_tenants.upsert(conn, [self.state.tenant(t) for t in sorted(tenants)])
        if self.listener is not None:
            self.listener.folded(list(jobs.values()), started)


class Listener(Protocol):
    """Who reacts to what the projection folded (the active scheduler)."""

    def folded(self, views: list[JobView], started: list[tuple[JobStarted, JobView]]) -> None: ...

