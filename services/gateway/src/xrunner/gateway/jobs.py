"""What the gateway does with jobs: append submissions, wait briefly for admission, find jobs and their logs."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from xrunner.contracts import codec, lifecycle, subjects
from xrunner.contracts.api import JobLog, JobView
from xrunner.contracts.events import JobSubmitted
from xrunner.contracts.messages import LogChunk
from xrunner.contracts.spec import JobSpec
from xrunner.gateway import readmodel
from xrunner.servicekit.auth import Principal
from xrunner.servicekit.eventstore import EventStore, read_raw
from xrunner.servicekit.ids import new_id

# Events after which admission has decided (or the job moved on), so a submit can answer.
_DECIDED = {"queued", "rejected", "dispatched", "started", "succeeded", "failed", "cancelled", "expired"}


@dataclass(frozen=True)
class Jobs:
    store: EventStore
    js: JetStreamContext
    nc: Client
    pool: asyncpg.Pool
    decision_wait_s: float

    async def submit(self, who: Principal, spec: JobSpec, idempotency_key: str | None) -> tuple[JobView, bool]:
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
        )
        decided = asyncio.Event()

        async def on_event(msg: Msg) -> None:
            if msg.subject.rsplit(".", 1)[-1] in _DECIDED:
                decided.set()

        sub = await self.nc.subscribe(subjects.job_events(who.tenant, job_id), cb=on_event)
        try:
            appended = await self.store.append(event, msg_id=msg_id, expect=0)
            if appended.duplicate:
                raw = await self.js.get_msg(subjects.EVENTS_STREAM, appended.seq)
                job_id = codec.decode(raw.data or b"", JobSubmitted).job_id
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(decided.wait(), self.decision_wait_s)
        finally:
            await sub.unsubscribe()
        view = await self.from_log(who.tenant, job_id)
        assert view is not None
        return view, not appended.duplicate

    async def get(self, tenant: str, job_id: str) -> JobView | None:
        """The read model's view, or the log's when the read model has not folded the job yet."""
        view = await readmodel.get_job(self.pool, tenant, job_id)
        return view if view is not None else await self.from_log(tenant, job_id)

    async def from_log(self, tenant: str, job_id: str) -> JobView | None:
        return lifecycle.replay(await self.store.history(tenant, job_id))

    async def log(self, view: JobView, offset: int, limit: int) -> JobLog:
        """The output of the job's current attempt from byte `offset`, at most `limit` bytes."""
        parts: list[bytes] = []
        taken = 0
        complete = lifecycle.is_terminal(view.state)
        async for _, data in read_raw(self.js, subjects.LOGS_STREAM, subjects.job_logs(view.tenant, view.id)):
            chunk = msgspec.json.decode(data, type=LogChunk)
            if chunk.attempt != view.attempt or chunk.offset + len(chunk.data) <= offset:
                continue
            piece = chunk.data[max(0, offset - chunk.offset) :]
            piece = piece[: max(0, limit - taken)]
            parts.append(piece)
            taken += len(piece)
            if taken >= limit:
                complete = False
                break
        raw = b"".join(parts)
        return JobLog(
            job_id=view.id,
            offset=offset,
            next_offset=offset + len(raw),
            text=raw.decode("utf-8", errors="replace"),
            complete=complete,
        )
