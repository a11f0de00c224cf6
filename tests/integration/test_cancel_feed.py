"""The worker hears cancel requests on an ordered JetStream consumer, not a core NATS subscription: a request stored
while the worker is cut off from NATS (the server restarted, the worker still reconnecting) still stops the job once
the feed is recreated from where it was."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from chaos.infra import Nats
from integration.cluster import Cluster
from support import W0, wait_until

from xrunner.contracts import events as ev
from xrunner.servicekit import streams
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id

TENANT = "acme"
LEASE_S = 20.0  # the NATS restart must not lapse the worker's lease: the job has to end by the cancel, not fencing


@pytest.fixture
def restartable(database_url: str, tmp_path: Path) -> Iterator[tuple[Nats, Cluster]]:
    """A nats-server this test may kill and start again on its port and store, and services on it."""
    nats = Nats(tmp_path / "nats")
    nats.start()
    cluster = Cluster(nats.url, database_url, tmp_path)
    try:
        yield nats, cluster
    finally:
        cluster.stop()
        nats.stop()


async def events_of(nats_url: str, job_id: str) -> list[ev.Event]:
    nc = await streams.connect(nats_url, "test-reader")
    try:
        return [e for _, e in await EventStore(nc.jetstream()).history(TENANT, job_id)]
    finally:
        await nc.close()


async def test_a_cancel_stored_while_the_worker_reconnects_still_stops_its_job(
    restartable: tuple[Nats, Cluster],
) -> None:
    nats, cluster = restartable
    cluster.start("scheduler", "scheduler", wait=False, tick_s=0.1, worker_lease_s=LEASE_S)
    cluster.start("gateway", "gateway", wait=False)
    cluster.start("worker0", "worker", wait=False, slots=2, worker_id=W0, sandbox="none", lease_s=LEASE_S,
                  workspace_dir=cluster.logs / "work")
    for name in list(cluster.procs):
        cluster.wait_ready(name)
    async with cluster.client(TENANT) as client:
        answer = await client.post("/v1/jobs", json={"workload": {"kind": "process", "argv": ["sleep", "300"]}})
        job_id = answer.json()["job"]["id"]

        async def running() -> bool:
            return (await client.get(f"/v1/jobs/{job_id}")).json()["state"] == "running"

        await wait_until(running, timeout=30, what="the job running")
    nats.kill()
    nats.start()  # the test connects at once; the worker reconnects within its 0.5 s wait, after this cancel
    nc = await streams.connect(nats.url, "test-canceller")
    try:
        store = EventStore(nc.jetstream())
        history = await store.history(TENANT, job_id)
        cancel = ev.JobCancelRequested(event_id=new_id(), occurred_at=datetime.now(UTC), tenant=TENANT,
                                       job_id=job_id, attempt=1, requested_by="test")
        await store.append(cancel, msg_id=f"{job_id}:cancel_requested", expect=history[-1][0])
    finally:
        await nc.close()

    async def cancelled() -> list[ev.Event] | None:
        events = await events_of(nats.url, job_id)
        return events if any(isinstance(e, ev.JobCancelled) for e in events) else None

    events = await wait_until(cancelled, timeout=45, interval=0.5, what="the job cancelled by its worker")
    assert [type(e).__name__ for e in events if isinstance(e, (ev.JobStarted, ev.JobCancelled, ev.JobSucceeded,
                                                               ev.JobFailed, ev.JobLost))] == \
        ["JobStarted", "JobCancelled"]
