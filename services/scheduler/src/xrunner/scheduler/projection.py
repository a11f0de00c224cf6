"""The scheduler's job projection: the shared state machine's view plus the columns decisions query."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from xrunner.contracts import codec, subjects
from xrunner.contracts.events import Event, JobDispatched
from xrunner.servicekit import jobviews

UPSERT = """
INSERT INTO jobs (tenant, id, state, attempt, pool, priority, queued_at, dispatched_at, dispatched_seq, version, view)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)
ON CONFLICT (tenant, id) DO UPDATE SET
  state = excluded.state, attempt = excluded.attempt, pool = excluded.pool, queued_at = excluded.queued_at,
  dispatched_at = COALESCE(excluded.dispatched_at, jobs.dispatched_at),
  dispatched_seq = COALESCE(excluded.dispatched_seq, jobs.dispatched_seq),
  version = excluded.version, view = excluded.view
WHERE jobs.version < excluded.version
"""


class SchedulerJobs:
    name = "scheduler.jobs"
    filter_subjects = (subjects.JOB_EVENTS_ALL,)

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[tuple[int, Event]]) -> None:
        views = await jobviews.fold_batch(conn, batch)
        dispatched = {(e.tenant, e.job_id): (seq, e) for seq, e in batch if isinstance(e, JobDispatched)}
        rows = []
        for key, v in views.items():
            if v is None:
                continue
            seq, ev = dispatched.get(key, (None, None))
            rows.append(
                (
                    v.tenant,
                    v.id,
                    v.state,
                    v.attempt,
                    v.pool,
                    v.spec.priority,
                    v.queued_at,
                    ev.occurred_at if ev else None,
                    seq,
                    v.version,
                    codec.encode(v).decode(),
                )
            )
        await conn.executemany(UPSERT, rows)
