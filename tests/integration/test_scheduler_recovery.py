"""Nothing accepted is ever stuck, and the scheduler's projection depends only on the log: jobs submitted while no
scheduler decides are decided and run once one does (started late, or a standby taking over from a frozen and killed
leader); a decision whose append failed is made by the sweep; the projection's rows equal a rebuild after batches
that did not commit and a second writer; and `rebuild` equals the live tables, usage included, after a lost worker
and a failover."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime
from importlib.resources import files

import asyncpg
import httpx
import nats.errors
from integration.cluster import Cluster
from integration.test_scheduler import _all_running, _folded_up_to, all_terminal, log, spec, submit_many
from nats.js import JetStreamContext
from support import W0, W1, wait_until
from unit.simulate import WIDE_OPEN, Sim, churn, pool

from xrunner.contracts import events as ev
from xrunner.contracts.spec import JobSpec, ProcessWorkload
from xrunner.contracts.stats import TenantLimits
from xrunner.scheduler.loop import Scheduler
from xrunner.scheduler.projection import SchedulerProjection
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.scheduler.state import SchedulerState
from xrunner.scheduler.workers import Workers
from xrunner.servicekit import db
from xrunner.servicekit.eventstore import Appended, EventStore
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.projector import fold_batch

TENANTS = ("acme", "globex", "initech")


async def submitted_202(client: httpx.AsyncClient, n: int) -> list[str]:
    """Submit `n` jobs that no scheduler decides: each is accepted as `202 submitted`."""
    ids = []
    for _ in range(n):
        response = await client.post("/v1/jobs", json=spec("true"))
        assert response.status_code == 202 and response.json()["job"]["state"] == "submitted", response.text
        ids.append(str(response.json()["job"]["id"]))
    return ids


async def decided_once_and_succeeded(cluster: Cluster, ids: dict[str, list[str]], timeout: float) -> None:
    for tenant, jobs in ids.items():
        async with cluster.client(tenant) as client:
            done = await wait_until(lambda c=client, j=jobs: all_terminal(c, j), timeout=timeout, what="the jobs")
            assert all(j["state"] == "succeeded" for j in done.values()), done
    history = await log(cluster.nats_url)
    every = {job for jobs in ids.values() for job in jobs}
    queued = [e.job_id for _, e in history if isinstance(e, ev.JobQueued) and e.job_id in every]
    assert sorted(queued) == sorted(every), "each job is admitted exactly once"
    dispatches = [(e.job_id, e.attempt) for _, e in history if isinstance(e, ev.JobDispatched)]
    assert len(dispatches) == len(set(dispatches)), "an attempt was dispatched twice"


async def test_jobs_submitted_while_no_scheduler_runs_are_decided_and_run_once_one_starts(cluster: Cluster) -> None:
    cluster.start("gateway", "gateway", decision_wait_s=0.1)
    cluster.start("worker0", "worker", slots=4, worker_id=W0, sandbox="none")
    ids: dict[str, list[str]] = {}
    for tenant in TENANTS:
        async with cluster.client(tenant) as client:
            ids[tenant] = await submitted_202(client, 5)
    cluster.start("scheduler", "scheduler", tick_s=0.1)
    await decided_once_and_succeeded(cluster, ids, timeout=30)


async def test_jobs_submitted_to_a_frozen_leader_that_is_then_killed_are_decided_by_the_standby(
    cluster: Cluster,
) -> None:
    cluster.start("s1", "scheduler", tick_s=0.1, scheduler_id="s1")
    await wait_until(lambda: "this scheduler is now active" in cluster.log("s1"), what="s1 to lead")
    cluster.start("s2", "scheduler", tick_s=0.1, scheduler_id="s2")
    cluster.start("gateway", "gateway", decision_wait_s=0.1)
    cluster.start("worker0", "worker", slots=4, worker_id=W0, sandbox="none")
    os.kill(cluster.procs["s1"].pid, signal.SIGSTOP)  # the leader neither folds nor decides any more
    ids: dict[str, list[str]] = {}
    for tenant in TENANTS:
        async with cluster.client(tenant) as client:
            ids[tenant] = await submitted_202(client, 5)
    cluster.kill("s1")  # and dies before it decides them
    await decided_once_and_succeeded(cluster, ids, timeout=40)
    assert "this scheduler is now active" in cluster.log("s2")


class FailingStore(EventStore):
    """The log, except that the first `failures` admissions time out (NATS away) without landing."""

    def __init__(self, js: JetStreamContext, failures: int) -> None:
        super().__init__(js)
        self.failures = failures

    async def append(self, event: ev.Event, *, msg_id: str, expect: int | None = None) -> Appended:
        if isinstance(event, ev.JobQueued) and self.failures > 0:
            self.failures -= 1
            raise nats.errors.TimeoutError
        return await super().append(event, msg_id=msg_id, expect=expect)


async def test_an_admission_whose_append_failed_is_made_by_the_sweep(js: JetStreamContext) -> None:
    store, tenant, job = EventStore(js), f"t{new_id()}", new_id()
    submitted = ev.JobSubmitted(event_id=new_id(), occurred_at=datetime.now(UTC), tenant=tenant, job_id=job,
                                spec=JobSpec(workload=ProcessWorkload(argv=["true"])))
    seq = (await store.append(submitted, msg_id=f"{job}:0:submitted", expect=0)).seq
    wake = asyncio.Event()
    settings = SchedulerSettings(tick_s=0.05, decide_after_s=0.5, stats_every_s=3600)
    scheduler = Scheduler(js, SchedulerState(TenantLimits()), Workers(js, wake, 5.0), settings, "test", wake)
    failing = scheduler.store = FailingStore(js, failures=1)
    scheduler.folded([(seq, submitted)])  # as the projection hands it over: the job is to be decided now

    async def queued() -> list[ev.JobQueued]:
        return [e for _, e in await store.history(tenant, job) if isinstance(e, ev.JobQueued)]

    running = asyncio.create_task(scheduler.run())
    try:
        (admitted,) = await wait_until(queued, timeout=10, what="the admission, from the sweep")
        assert not running.done(), "a failed append must not stop the scheduler"
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert failing.failures == 0
    assert (admitted.occurred_at - submitted.occurred_at).total_seconds() >= settings.decide_after_s
    assert await queued() == [admitted]


async def tables(conn: asyncpg.Connection, schema: str) -> list[list[dict[str, object]]]:
    return [[dict(r) for r in await conn.fetch(f"SELECT * FROM {schema}.{table} ORDER BY {order}")]
            for table, order in (("jobs", "tenant, id"), ("tenants", "tenant"))]


async def test_the_projection_rows_equal_a_rebuild_after_batches_that_did_not_commit(database_url: str) -> None:
    sim = Sim()
    churn(sim, random.Random(11), 40, {"default": pool(slots=6)}, TENANTS)
    conn = await asyncpg.connect(database_url)
    try:
        for schema in ("scheduler", "scheduler_rebuild"):
            await db.migrate(conn, schema, db.migration_files(files("xrunner.scheduler") / "sql"))
        await conn.execute("SET search_path TO scheduler_rebuild, public")
        async with conn.transaction():
            await fold_batch(conn, SchedulerProjection(WIDE_OPEN), sim.log)
        await conn.execute("SET search_path TO scheduler, public")
        # The leader's projection and, now and then, a deposed leader's still writing; a third of the batches fail
        # to commit after they were folded.
        writers, rng, done = [SchedulerProjection(WIDE_OPEN), SchedulerProjection(WIDE_OPEN)], random.Random(3), 0
        while done < len(sim.log):
            batch = sim.log[done : done + rng.randint(1, 30)]
            writer = writers[1 if rng.random() < 0.2 else 0]
            with contextlib.suppress(ZeroDivisionError):
                async with conn.transaction():
                    await fold_batch(conn, writer, batch)
                    if rng.random() < 0.3:
                        raise ZeroDivisionError  # the commit fails
                    done += len(batch)
        assert await tables(conn, "scheduler") == await tables(conn, "scheduler_rebuild")
    finally:
        await conn.close()


def test_a_rebuild_equals_the_live_tables_usage_included_after_a_lost_worker_and_a_failover(cluster: Cluster) -> None:
    cluster.start("s1", "scheduler", tick_s=0.1, worker_lease_s=3, scheduler_id="s1")
    cluster.start("s2", "scheduler", tick_s=0.1, worker_lease_s=3, scheduler_id="s2")
    cluster.start("gateway", "gateway")
    cluster.start("worker0", "worker", slots=4, worker_id=W0, sandbox="none")
    asyncio.run(_three_tenants_through_faults(cluster))
    env = {"XR_NATS_URL": cluster.nats_url, "XR_DATABASE_URL": cluster.database_url, "XR_JWT_SECRET": "x",
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "xrunner.scheduler", "rebuild"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rebuild equals the live projection" in result.stdout


async def _three_tenants_through_faults(cluster: Cluster) -> None:
    """Runs of three tenants end while the scheduler gives two runs up (its own `job.lost`, applied to its working
    state before the projection folds the successes just before it) and while the leader is killed."""
    ids: dict[str, list[str]] = {}
    async with cluster.client("acme") as acme:
        ids["acme"] = await submit_many(acme, 2, spec('[ "$XR_ATTEMPT" = 1 ] && sleep 20; sleep 0.2'))
        await wait_until(lambda: _all_running(acme, ids["acme"]), timeout=15, what="two running jobs")
    cluster.start("worker1", "worker", slots=6, worker_id=W1, sandbox="none")
    for tenant in TENANTS:
        async with cluster.client(tenant) as client:
            ids[tenant] = ids.get(tenant, []) + await submit_many(client, 15, spec("sleep 0.1"))
    cluster.kill("worker0")  # lost after the lease, while worker1 works through the others' runs
    async with cluster.client("acme") as acme:
        ids["acme"] += await submit_many(acme, 15, spec("sleep 0.1"))
        await wait_until(lambda: _lost(cluster), timeout=15, what="the scheduler to give worker0's runs up")
    leader = next(name for name in ("s1", "s2") if "this scheduler is now active" in cluster.log(name))
    cluster.kill(leader)
    for tenant in TENANTS:
        async with cluster.client(tenant) as client:
            ids[tenant] += await submit_many(client, 3, spec("sleep 0.1"))
            done = await wait_until(lambda c=client, j=ids[tenant]: all_terminal(c, j), timeout=60, what="the jobs")
            assert all(j["state"] == "succeeded" for j in done.values()), done
    last = max(seq for seq, _ in await log(cluster.nats_url))
    await wait_until(lambda: _folded_up_to(cluster.database_url, last), what="the live projection to catch up")
    conn = await asyncpg.connect(cluster.database_url)
    try:
        rows = await conn.fetch("SELECT tenant, usage_cpu FROM scheduler.tenants")
    finally:
        await conn.close()
    usage = {r["tenant"]: r["usage_cpu"] for r in rows}
    assert all(usage.get(t, 0) > 0 for t in TENANTS), usage  # the comparison covers the usage of every tenant


async def _lost(cluster: Cluster) -> bool:
    return sum(isinstance(e, ev.JobLost) for _, e in await log(cluster.nats_url)) >= 2
