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
