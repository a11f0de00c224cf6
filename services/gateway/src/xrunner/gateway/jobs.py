"""What the gateway does with jobs: append submissions and cancel requests, find jobs and their histories."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from xrunner.contracts import codec, lifecycle, subjects
from xrunner.contracts.api import HistoryEntry, JobView
from xrunner.contracts.events import Event, JobCancelRequested, JobEvent, JobSubmitted, tag_of
from xrunner.contracts.spec import JobSpec
from xrunner.gateway.decisions import Decisions
from xrunner.gateway.readmodel import JobsTable, artifact_counts
from xrunner.servicekit.auth import Principal
from xrunner.servicekit.eventstore import ConflictError, EventStore
from xrunner.servicekit.ids import new_id

log = structlog.get_logger()


def _view(history: list[tuple[int, Event]]) -> JobView:
    view = lifecycle.replay(history)
    assert view is not None
    return view


CANCEL_TRIES = 5  # compare-and-set rounds before giving up on a job whose history keeps moving

CancelOutcome = Literal["requested", "already_requested", "finished"]


@dataclass(frozen=True)
class Jobs:
    """The jobs service: the log (`store`, read back through `js`), admission's decisions as they are stored, and
    the read model."""

    store: EventStore
    js: JetStreamContext
    decisions: Decisions
    table: JobsTable
    decision_wait_s: float

    async def submit(
        self, who: Principal, spec: JobSpec, idempotency_key: str | None, rerun_of: str | None = None
    ) -> tuple[JobView, bool]:
        """Append `job.submitted` once per idempotency key; returns the job as admission left it and whether
        this call created it."""
        job_id = new_id()
        msg_id = f"submit:{who.tenant}:{idempotency_key or job_id}"
        now = datetime.now(UTC)
        event = JobSubmitted(
            event_id=new_id(),
            occurred_at=now,
            tenant=who.tenant,
            job_id=job_id,
            spec=spec,
            submitted_by=who.subject,
            idempotency_key=idempotency_key,
            rerun_of=rerun_of,
        )
        futures = await self.decisions.expect([job_id])  # before the append: no decision can come first
        try:
            appended = await self.store.append(event, msg_id=msg_id, expect=0)
            log.info("job submitted", job_id=job_id, tenant=who.tenant, seq=appended.seq, repeat=appended.duplicate)
            if appended.duplicate:
                raw = await self.js.get_msg(subjects.EVENTS_STREAM, appended.seq)
                return await self._as_of_now(codec.decode(raw.data or b"", JobSubmitted)), False
            decision = (await self.decisions.wait(futures, self.decision_wait_s)).get(job_id)
        finally:
            self.decisions.forget([job_id])
        decision = decision or await self.next_event(who.tenant, job_id, appended.seq)
        return _view([(appended.seq, event), *([decision] if decision else [])]), True

    async def next_event(self, tenant: str, job_id: str, after: int) -> tuple[int, Event] | None:
        """The job's first event after `after` in the log, if any: what admission decided when the live feed did
        not deliver it within the wait (it was being recreated), or nothing yet."""
        try:
            raw = await self.js.get_msg(subjects.EVENTS_STREAM, seq=after + 1,
                                        subject=subjects.job_history(tenant, job_id), next=True, direct=True)
        except NotFoundError:
            return None
        assert raw.seq is not None
        return raw.seq, codec.decode_event(raw.data or b"")

    async def _as_of_now(self, submitted: JobSubmitted) -> JobView:
        view = await self.from_log(submitted.tenant, submitted.job_id)
        assert view is not None
        return view

    async def get(self, tenant: str, job_id: str) -> JobView | None:
        """The read model's view when it shows the job finished (a final state does not change), else the log's: a
        client that saw an event on the stream and then asks here sees at least that event folded, even while the
        read model lags behind the log. Reads never go back in time: the log is never behind the read model."""
        view = await self.table.get(tenant, job_id)
        if view is not None and lifecycle.is_terminal(view.state):
            return view
        logged = await self.from_log(tenant, job_id)
        if logged is None or (view is not None and view.version >= logged.version):
            return view
        return logged

    async def from_log(self, tenant: str, job_id: str) -> JobView | None:
        history = await self.store.history(tenant, job_id)
        view = lifecycle.replay(history)
        if view is not None:
            view.artifacts = sum(artifact_counts(history).values())
        return view

    async def cancel(self, who: Principal, job_id: str, reason: str) -> tuple[JobView, CancelOutcome] | None:
        """Append `job.cancel_requested` once, compare-and-set on the job's history: a lost race re-reads it and
        decides again. None when the tenant has no such job; ConflictError when the history never holds still."""
        for _ in range(CANCEL_TRIES):
            history = await self.store.history(who.tenant, job_id)
            view = lifecycle.replay(history)
            if view is None:
                return None
            if lifecycle.is_terminal(view.state):
                return view, "finished"
            if view.cancel_requested:
                return view, "already_requested"
            event = JobCancelRequested(
                event_id=new_id(),
                occurred_at=datetime.now(UTC),
                tenant=who.tenant,
                job_id=job_id,
                attempt=view.attempt,
                requested_by=who.subject,
                reason=reason,
            )
            try:
                await self.store.append(event, msg_id=f"{job_id}:cancel_requested", expect=history[-1][0])
            except ConflictError:
                continue
            after = await self.from_log(who.tenant, job_id)
            return (after or view), "requested"
        raise ConflictError(f"job {job_id} kept changing while cancelling it")

    async def history(self, tenant: str, job_id: str) -> list[HistoryEntry]:
        """The job's events from the log, in order, with their stream sequences; empty when it has none."""
        return [
            HistoryEntry(
                seq=seq,
                type=tag_of(type(event)),
                occurred_at=event.occurred_at,
                attempt=event.attempt if isinstance(event, JobEvent) else 0,
                event=msgspec.to_builtins(event),
            )
            for seq, event in await self.store.history(tenant, job_id)
        ]
