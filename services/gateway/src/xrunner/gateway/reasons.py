"""Says why a job ran when and where it did: its recorded scheduler decisions in order, each dispatch with its
inputs and the dispatches that went before it while it waited (and why they went first). Pure: the caller reads the
job's history and the dispatches in each wait from the log. Another tenant is never named to a caller who is not an
admin: its name becomes `another tenant` (`other-N` in a dispatch's standings) and its job ids are left out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from xrunner.contracts import events as ev
from xrunner.contracts.decisions import Decision, DispatchWhy, Standing, WentBefore

History = Sequence[tuple[int, ev.Event]]
ANOTHER = "another tenant"


def queue_entries(history: History) -> dict[int, int]:
    """For each dispatch (by sequence), the sequence of the event that put its attempt in the queue."""
    entered, out = 0, {}
    for seq, event in history:
        if isinstance(event, (ev.JobQueued, ev.JobRetryScheduled, ev.JobLost)):
            entered = seq
        elif isinstance(event, ev.JobDispatched):
            out[seq] = entered
    return out


def decisions(history: History, before: Mapping[int, Sequence[tuple[int, ev.JobDispatched]]], skipped: Mapping[int,
              int], caller: str, admin: bool) -> list[Decision]:
    """The job's scheduler decisions; `before[seq]` are the dispatches in the wait that ended with the dispatch at
    `seq` (the latest ones), `skipped[seq]` how many earlier ones were left out."""
    at = {seq: event.occurred_at for seq, event in history}
    entries = queue_entries(history)
    out = []
    for seq, event in history:
        kind = _kind(event)
        if kind is None or not isinstance(event, ev.JobEvent):
            continue
        if not isinstance(event, ev.JobDispatched):
            out.append(Decision(seq=seq, at=event.occurred_at, kind=kind, attempt=event.attempt,
                                summary=summary(event)))
            continue
        entered = at.get(entries.get(seq, 0))
        why = None if event.why is None else redact(event.why, caller, admin)
        went = [went_before(s, other, event, caller, admin) for s, other in before.get(seq, ())]
        out.append(Decision(seq=seq, at=event.occurred_at, kind=kind, attempt=event.attempt, summary=summary(event),
                            waited_s=None if entered is None else round((event.occurred_at - entered)
                                                                        .total_seconds(), 3),
                            why=why, went_before=went, went_before_more=skipped.get(seq, 0)))
    return out


def _kind(event: ev.Event) -> str | None:
    if isinstance(event, ev.JobFailed):
        return "abandoned" if event.abandoned else None
    if isinstance(event, (ev.JobQueued, ev.JobRejected, ev.JobDispatched, ev.JobRetryScheduled, ev.JobLost,
                          ev.JobExpired, ev.JobTimedOut, ev.JobCancelled)):
        return ev.type_token(type(event))
    return None


def summary(event: ev.Event) -> str:
    """The decision in a sentence."""
    match event:
        case ev.JobQueued():
            return f"admitted: position {event.position} in the tenant's queue"
        case ev.JobRejected():
            return f"refused ({event.cause}, {event.scope}): {event.detail}; retry after {event.retry_after_s:g}s"
        case ev.JobDispatched(why=None):
            return f"attempt {event.attempt} released to pool {event.pool}"
        case ev.JobDispatched(why=DispatchWhy() as why):
            return (f"attempt {event.attempt} released to pool {event.pool}: pick {why.rank} of {why.picks} in its "
                    f"round, {_standing(why.tenant)}, position {why.queue_position} in the tenant's queue")
        case ev.JobRetryScheduled():
            return f"retry after its backoff, not before {event.not_before.isoformat()}"
        case ev.JobLost():
            return f"worker {event.worker_id} stopped heartbeating: back to the queue"
        case ev.JobExpired():
            return f"waited {event.waited_s:g}s in the queue, past its queue timeout"
        case ev.JobTimedOut():
            return f"ran past its timeout of {event.timeout_s:g}s"
        case ev.JobCancelled():
            return event.detail or "cancelled"
        case ev.JobFailed():
            return event.reason
    return ""


def _standing(s: Standing) -> str:
    if s.idle:
        return "its tenant had nothing in flight (served first)"
    return f"its tenant's weighted share was {s.rank_share:.4f} (weight {s.weight:g}, {s.inflight} in flight)"


def redact(why: DispatchWhy, caller: str, admin: bool) -> DispatchWhy:
    """Other tenants' names become `other-N` (in the order the plan would serve them) unless the caller is an
    admin."""
    if admin:
        return why
    names = {c.tenant: f"other-{i}" for i, c in enumerate((c for c in why.competing if c.tenant != caller), 1)}
    competing = [msgspec.structs.replace(c, tenant=names.get(c.tenant, c.tenant)) for c in why.competing]
    tenant = why.tenant if why.tenant.tenant == caller else msgspec.structs.replace(why.tenant, tenant="other")
    return msgspec.structs.replace(why, tenant=tenant, competing=competing)


def went_before(seq: int, other: ev.JobDispatched, ours: ev.JobDispatched, caller: str, admin: bool) -> WentBefore:
    """A dispatch in our wait and why it went first: its tenant had nothing in flight, or a smaller weighted share
    than ours then, or (our tenant's) it was ahead in the queue; else our job could not start then."""
    mine = other.tenant == ours.tenant
    shown = admin or mine
    return WentBefore(seq=seq, at=other.occurred_at, tenant=other.tenant if shown else ANOTHER,
                      job_id=other.job_id if shown else None, pool=other.pool, reason=_first(other, ours, mine))


def _first(other: ev.JobDispatched, ours: ev.JobDispatched, mine: bool) -> str:
    if other.why is None:
        return "dispatched before decisions recorded their inputs"
    if mine:
        return f"ahead in your tenant's queue (priority, then first come; position {other.why.queue_position})"
    if other.why.tenant.idle:
        return "its tenant had nothing in flight: served first"
    rival = next((c for c in other.why.competing if c.tenant == ours.tenant), None)
    theirs = other.why.tenant.rank_share
    if rival is None:
        return (f"its tenant's weighted share was {theirs:.4f}; your tenant was not competing then (at its "
                "max_inflight, or no job of it could start)")
    return f"its tenant's weighted share {theirs:.4f} was below yours, {rival.rank_share:.4f}"
