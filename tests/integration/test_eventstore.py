"""The event store against a real nats-server: dedupe, compare-and-set, history reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from nats.js import JetStreamContext

from xrunner.contracts.events import JobCancelRequested, JobQueued, JobSubmitted
from xrunner.contracts.spec import JobSpec, ProcessWorkload
from xrunner.servicekit.eventstore import ConflictError, EventStore
from xrunner.servicekit.ids import new_id

SPEC = JobSpec(workload=ProcessWorkload(argv=["true"]))


def submitted(tenant: str, job_id: str) -> JobSubmitted:
    return JobSubmitted(event_id=new_id(), occurred_at=datetime.now(UTC), tenant=tenant, job_id=job_id, spec=SPEC)


def queued(tenant: str, job_id: str) -> JobQueued:
    return JobQueued(event_id=new_id(), occurred_at=datetime.now(UTC), tenant=tenant, job_id=job_id, pool="default")


async def test_an_appended_event_is_read_back_in_the_jobs_history(js: JetStreamContext) -> None:
    store, job = EventStore(js), new_id()
    appended = await store.append(submitted("acme", job), msg_id=f"{job}:submit", expect=0)
    history = await store.history("acme", job)
    assert [seq for seq, _ in history] == [appended.seq]
    assert isinstance(history[0][1], JobSubmitted) and history[0][1].job_id == job


async def test_a_retried_append_with_the_same_msg_id_is_stored_once(js: JetStreamContext) -> None:
    store, job = EventStore(js), new_id()
    first = await store.append(submitted("acme", job), msg_id=f"{job}:submit")
    again = await store.append(submitted("acme", job), msg_id=f"{job}:submit")
    assert (again.seq, again.duplicate, first.duplicate) == (first.seq, True, False)
    assert len(await store.history("acme", job)) == 1


async def test_an_append_expecting_a_stale_sequence_is_refused(js: JetStreamContext) -> None:
    store, job = EventStore(js), new_id()
    first = await store.append(submitted("acme", job), msg_id=f"{job}:submit", expect=0)
    with pytest.raises(ConflictError):
        await store.append(submitted("acme", job), msg_id=f"{job}:submit-again", expect=0)
    second = await store.append(queued("acme", job), msg_id=f"{job}:queued", expect=first.seq)
    cancel = JobCancelRequested(event_id=new_id(), occurred_at=datetime.now(UTC), tenant="acme", job_id=job)
    with pytest.raises(ConflictError):
        await store.append(cancel, msg_id=f"{job}:cancel", expect=first.seq)
    assert await store.last_seq("acme", job) == second.seq


async def test_a_compare_and_set_append_whose_earlier_try_was_stored_is_recognised_as_done(
    js: JetStreamContext,
) -> None:
    """The ack of the first try was lost (a node died, a timeout): the retry's expected sequence is stale, and the
    server refuses it before looking at the message id; the store finds its own event there instead of a conflict."""
    store, job = EventStore(js), new_id()
    first = await store.append(submitted("acme", job), msg_id=f"{job}:submit", expect=0)
    event = queued("acme", job)
    stored = await store.append(event, msg_id=f"{job}:queued", expect=first.seq)
    retried = await store.append(event, msg_id=f"{job}:queued", expect=first.seq)
    assert retried.seq == stored.seq
    with pytest.raises(ConflictError):  # another writer's event, even under the same message id, is a conflict
        await store.append(queued("acme", job), msg_id=f"{job}:queued", expect=first.seq)
    assert len(await store.history("acme", job)) == 2


async def test_compare_and_set_is_scoped_to_one_job(js: JetStreamContext) -> None:
    store, a, b = EventStore(js), new_id(), new_id()
    await store.append(submitted("acme", a), msg_id=f"{a}:submit", expect=0)
    await store.append(submitted("acme", b), msg_id=f"{b}:submit", expect=0)
    assert len(await store.history("acme", a)) == 1


async def test_long_histories_are_read_completely_and_in_order(js: JetStreamContext) -> None:
    store, job = EventStore(js), new_id()
    seqs = [(await store.append(submitted("acme", job), msg_id=f"{job}:{i}")).seq for i in range(70)]
    assert [seq for seq, _ in await store.history("acme", job)] == seqs


async def test_one_tenants_history_never_contains_another_tenants_job(js: JetStreamContext) -> None:
    store, job = EventStore(js), new_id()
    await store.append(submitted("tenant-a", job), msg_id=f"a:{job}")
    assert await store.history("tenant-b", job) == []


async def test_an_atomic_append_stores_every_event_in_one_piece_or_none_of_them(js: JetStreamContext) -> None:
    store, jobs = EventStore(js), [new_id() for _ in range(5)]
    appended = await store.append_atomic([(submitted("acme", j), f"{j}:submit", 0) for j in jobs])
    assert appended is not None and not any(a.duplicate for a in appended)
    for job, one in zip(jobs, appended, strict=True):  # each sequence is its own event's
        assert [seq for seq, _ in await store.history("acme", job)] == [one.seq]
    assert [a.seq for a in appended] == list(range(appended[0].seq, appended[0].seq + 5)), "stored in one piece"
    # One job's history moved: nothing of the batch is stored, and the caller is told to append one by one.
    fresh = [new_id() for _ in range(3)]
    moved = [(submitted("acme", j), f"{j}:submit", 0) for j in fresh] + [(queued("acme", jobs[0]), "q", 0)]
    assert await store.append_atomic(moved) is None
    assert [await store.history("acme", j) for j in fresh] == [[], [], []]
    # The same request again (new job ids, the same message ids): refused as a whole; one by one, each append is
    # answered as the duplicate of the first request's.
    again = [(submitted("acme", new_id()), f"{j}:submit", 0) for j in jobs]
    assert await store.append_atomic(again) is None
    repeated = [await store.append(e, msg_id=m, expect=x) for e, m, x in again]
    assert [(a.seq, a.duplicate) for a in repeated] == [(a.seq, True) for a in appended]
