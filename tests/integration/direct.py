"""Dispatch without a scheduler: write a job's history up to `job.dispatched` and queue its work item, exactly as
the scheduler does, so a test or benchmark exercises one worker alone."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js import JetStreamContext

from xrunner.contracts import codec, subjects
from xrunner.contracts import events as ev
from xrunner.contracts.messages import RunJob
from xrunner.contracts.spec import JobSpec
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id


async def dispatch(js: JetStreamContext, tenant: str, pool: str, spec: JobSpec) -> tuple[str, datetime]:
    """Submit, queue and dispatch attempt 1 of a new job to `pool`; returns its id and dispatch time."""
    store, job_id = EventStore(js), new_id()
    common = {"tenant": tenant, "job_id": job_id}
    await store.append(ev.JobSubmitted(event_id=new_id(), occurred_at=datetime.now(UTC), spec=spec, **common),
                       msg_id=f"{job_id}:0:submitted")
    await store.append(ev.JobQueued(event_id=new_id(), occurred_at=datetime.now(UTC), pool=pool, **common),
                       msg_id=f"{job_id}:0:queued")
    at = datetime.now(UTC)
    dispatched = await store.append(ev.JobDispatched(event_id=new_id(), occurred_at=at, pool=pool, attempt=1, **common),
                                    msg_id=f"{job_id}:1:dispatched")
    run = RunJob(tenant=tenant, job_id=job_id, attempt=1, spec=spec, fence_seq=dispatched.seq, dispatched_at=at)
    await js.publish(subjects.run_queue(pool), codec.encode(run), stream=subjects.RUN_STREAM,
                     headers={"Nats-Msg-Id": f"run:{job_id}:1"})
    return job_id, at
