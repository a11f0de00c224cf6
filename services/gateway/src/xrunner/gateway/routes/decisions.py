"""`GET /v1/jobs/{job_id}/decisions`: why the job ran when and where it did (from its history and the dispatches in
each of its waits, read from the log), and while it waits, what is ahead of it (the scheduler's snapshot)."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime

import msgspec
from litestar import get
from nats.js import JetStreamContext

from xrunner.contracts import codec, lifecycle, subjects
from xrunner.contracts import events as ev
from xrunner.contracts.decisions import JobDecisions, QueuedAhead
from xrunner.gateway import diagnosis, reasons, snapshot
from xrunner.gateway.dependencies import JobsService, Stream, Who
from xrunner.gateway.routes.jobs import JOB_ID, job_not_found
from xrunner.servicekit.eventstore import read_raw
from xrunner.servicekit.guards import READ

WENT_BEFORE_KEPT = 50  # the latest dispatches of a wait that are listed; the others are counted
AHEAD_KEPT = 50
SCAN_LIMIT = 20_000  # dispatches read per wait at most (a longer wait is counted up to here)


async def dispatched_between(js: JetStreamContext, after: int, until: int) -> tuple[list[tuple[int,
                                                                                              ev.JobDispatched]], int]:
    """The latest dispatches of any job with a sequence in (after, until), and how many earlier ones there were."""
    kept: deque[tuple[int, ev.JobDispatched]] = deque(maxlen=WENT_BEFORE_KEPT)
    seen = 0
    if until - after <= 1:
        return [], 0
    async for seq, data in read_raw(js, subjects.EVENTS_STREAM, subjects.job_events(token="dispatched"), after + 1):
        if seq >= until or seen >= SCAN_LIMIT:
            break
        seen += 1
        try:
            event = codec.decode_event(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if isinstance(event, ev.JobDispatched):
            kept.append((seq, event))
    return list(kept), seen - len(kept)


@get("/v1/jobs/{job_id:str}/decisions", opt=READ, tags=["jobs"])
async def get_decisions(who: Who, service: JobsService, js: Stream, job_id: JOB_ID) -> JobDecisions:
    """The scheduler's decisions about the job with their inputs (for each dispatch: its tenant's standing, the
    competing tenants, how placement saw every pool, and the dispatches that went before it while it waited); while
    it is queued, why it waits and the jobs of your tenant ahead of it."""
    history = await service.store.history(who.tenant, job_id)
    view = lifecycle.replay(history)  # the log's view: the read model may not have folded the latest decisions
    if view is None:
        raise job_not_found(job_id)
    before, skipped = {}, {}
    for seq, entered in reasons.queue_entries(history).items():
        before[seq], skipped[seq] = await dispatched_between(js, entered, seq)
    admin = "admin" in who.scopes
    answer = JobDecisions(job_id=job_id, state=view.state,
                          decisions=reasons.decisions(history, before, skipped, who.tenant, admin))
    if view.state == "queued":
        snap = await snapshot.read(js, [who.tenant])
        stats = snap.tenants.get(who.tenant)
        why = diagnosis.explain(view, stats, snap.limits(who.tenant), snap.at, datetime.now(UTC))
        answer.waiting_reason, answer.waiting_detail, answer.position = why.reason, why.detail, why.position
        head = stats.head if stats else []
        answer.ahead = [QueuedAhead(job_id=q.job_id, position=q.position, reason=q.reason) for q in head
                        if why.position is not None and q.position < why.position][:AHEAD_KEPT]
    return answer
