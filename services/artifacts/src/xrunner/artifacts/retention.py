"""Retention: removes the objects of artifacts whose tenant's TTL is up, then appends `artifact.expired` for each.

Safe with any number of sweepers and after any crash: deleting an object twice is harmless, and each job's
expirations are appended with compare-and-set on its history after checking that history for them, so an artifact
expires once however many sweepers race (the fixed `Nats-Msg-Id` also dedupes a retried append)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog

from xrunner.artifacts import metrics
from xrunner.artifacts.catalog import Catalog, Due
from xrunner.artifacts.objects import ObjectStore
from xrunner.contracts.events import ArtifactExpired
from xrunner.servicekit.eventstore import ConflictError, EventStore
from xrunner.servicekit.ids import new_id

log = structlog.get_logger()

CAS_TRIES = 10


class Sweeper:
    def __init__(self, catalog: Catalog, store: ObjectStore, events: EventStore, interval_s: float,
                 batch: int) -> None:
        self.catalog, self.store, self.events = catalog, store, events
        self.interval_s, self.batch = interval_s, batch

    async def run(self) -> None:
        """Sweep every `interval_s` until cancelled; a failed sweep is logged and retried next time."""
        while True:
            try:
                await self.sweep(datetime.now(UTC))
            except Exception as exc:
                log.warning("retention sweep failed; retrying", error=repr(exc))
            await asyncio.sleep(self.interval_s)

    async def sweep(self, now: datetime) -> int:
        """Expire what is due at `now` (one batch); returns how many artifacts expired."""
        due = await self.catalog.due(now, self.batch)
        by_job = itertools.groupby(sorted(due, key=lambda d: (d.tenant, d.job_id)), key=lambda d: (d.tenant, d.job_id))
        expired = 0
        for (tenant, job_id), items in by_job:
            artifacts = list(items)
            for artifact in artifacts:
                for key in artifact.keys:
                    await self.store.delete(key)
            expired += await self._append(tenant, job_id, artifacts, now)
        metrics.EXPIRED.inc(expired)
        return expired

    async def _append(self, tenant: str, job_id: str, artifacts: Sequence[Due], now: datetime) -> int:
        """`artifact.expired` for those of `artifacts` the job's history does not already expire."""
        for _ in range(CAS_TRIES):
            history = await self.events.history(tenant, job_id)
            done = {e.artifact_id for _, e in history if isinstance(e, ArtifactExpired)}
            last = history[-1][0] if history else 0
            todo = [a for a in artifacts if a.id not in done]
            try:
                for artifact in todo:
                    event = ArtifactExpired(event_id=new_id(), occurred_at=now, tenant=tenant, job_id=job_id,
                                            attempt=artifact.attempt, artifact_id=artifact.id)
                    last = (await self.events.append(event, msg_id=f"artifact-expired:{artifact.id}",
                                                     expect=last)).seq
            except ConflictError:
                continue
            return len(todo)
        raise ConflictError(f"job {job_id}'s history kept moving while expiring its artifacts")
