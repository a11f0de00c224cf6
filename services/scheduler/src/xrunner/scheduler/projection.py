"""The scheduler's projection: folds the log into its working state and mirrors touched jobs and tenants into
Postgres (so a new leader starts from there, and a rebuild can be compared with the live tables)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import asyncpg

from xrunner.contracts import codec, subjects
from xrunner.contracts.api import JobView
from xrunner.contracts.events import Event, JobDispatched, JobEvent, JobStarted, TenantConfigured
from xrunner.scheduler.state import SchedulerState, TenantRec
from xrunner.servicekit import jobviews

UPSERT_JOB = """
INSERT INTO jobs (tenant, id, state, attempt, pool, priority, queued_at, version, view)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
ON CONFLICT (tenant, id) DO UPDATE SET
  state = excluded.state, attempt = excluded.attempt, pool = excluded.pool, queued_at = excluded.queued_at,
  version = excluded.version, view = excluded.view
WHERE jobs.version < excluded.version
"""

# Not guarded by the row's version: the scheduler's own appends may already be in the row (it writes its working
# state, which runs ahead of the projector), but the dispatch columns are only written here.
SET_DISPATCH = """
UPDATE jobs SET dispatched_seq = $3, dispatched_at = $4
WHERE tenant = $1 AND id = $2 AND (dispatched_seq IS NULL OR dispatched_seq < $3)
"""

UPSERT_TENANT = """
INSERT INTO tenants (tenant, weight, max_inflight, max_queued, submit_rate_per_s, configured, config_seq,
                     bucket_tokens, bucket_at, bucket_seq, usage_cpu, usage_memory, usage_gpu, usage_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (tenant) DO UPDATE SET
  weight = excluded.weight, max_inflight = excluded.max_inflight, max_queued = excluded.max_queued,
  submit_rate_per_s = excluded.submit_rate_per_s, configured = excluded.configured,
  config_seq = excluded.config_seq, bucket_tokens = excluded.bucket_tokens, bucket_at = excluded.bucket_at,
  bucket_seq = excluded.bucket_seq, usage_cpu = excluded.usage_cpu, usage_memory = excluded.usage_memory,
  usage_gpu = excluded.usage_gpu, usage_at = excluded.usage_at
"""


class SchedulerProjection:
    name = "scheduler.jobs"
    filter_subjects = (subjects.JOB_EVENTS_ALL, subjects.tenant_events())

    def __init__(self, state: SchedulerState, listener: Listener | None = None) -> None:
        self.state, self.listener = state, listener

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]]) -> None:
        jobs: dict[tuple[str, str], JobView] = {}
        dispatches: list[tuple[str, str, int, datetime]] = []
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
        rows = [_job_row(v) for v in [*jobs.values(), *await _ended_rows(conn, ended, jobs)]]
        await conn.executemany(UPSERT_JOB, rows)
        await conn.executemany(SET_DISPATCH, dispatches)
        await conn.executemany(UPSERT_TENANT, [_tenant_row(self.state.tenant(t)) for t in sorted(tenants)])
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


def _job_row(v: JobView) -> tuple[object, ...]:
    return (v.tenant, v.id, v.state, v.attempt, v.pool, v.spec.priority, v.queued_at, v.version,
            codec.encode(v).decode())


def _tenant_row(t: TenantRec) -> tuple[object, ...]:
    lim = t.limits
    return (
        t.name,
        lim.weight,
        lim.max_inflight,
        lim.max_queued,
        lim.submit_rate_per_s,
        lim.configured,
        t.config_seq,
        t.bucket.tokens,
        t.bucket.at,
        t.bucket_seq,
        t.usage.cpu,
        t.usage.memory,
        t.usage.gpu,
        t.usage.at,
    )
