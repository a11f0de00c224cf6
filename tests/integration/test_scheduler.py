"""The scheduler with real gateway, worker and scheduler processes on real NATS and Postgres: fairness, quotas,
placement, liveness, retries, expiry, failover and replay, checked from the event log."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import asyncpg
import httpx
from integration.cluster import Cluster
from support import W0, W1, wait_until, worker_id

from xrunner.contracts import codec, subjects
from xrunner.contracts import events as ev
from xrunner.contracts.stats import TenantStats, tenant_stats_key
from xrunner.servicekit import streams
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id

TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "expired", "rejected"}


def spec(cmd: str, **extra: object) -> dict[str, object]:
    return {"workload": {"kind": "process", "argv": ["sh", "-c", cmd]}, **extra}


async def submit_many(client: httpx.AsyncClient, n: int, body: dict[str, object], concurrency: int = 32) -> list[str]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> str:
        async with gate:
            response = await client.post("/v1/jobs", json=body)
        assert response.status_code in (201, 202), response.text
        return str(response.json()["job"]["id"])

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def states(client: httpx.AsyncClient, ids: list[str]) -> dict[str, dict[str, object]]:
    return {i: (await client.get(f"/v1/jobs/{i}")).json() for i in ids}


async def all_terminal(client: httpx.AsyncClient, ids: list[str]) -> dict[str, dict[str, object]] | None:
    jobs = await states(client, ids)
    return jobs if all(j["state"] in TERMINAL for j in jobs.values()) else None


async def log(nats_url: str) -> list[tuple[int, ev.Event]]:
    nc = await streams.connect(nats_url, "test-reader")
    try:
        return [item async for item in EventStore(nc.jetstream()).read(subjects.JOB_EVENTS_ALL)]
    finally:
        await nc.close()


async def configure(nats_url: str, tenant: str, **limits: object) -> None:
    nc = await streams.connect(nats_url, "test-admin")
    await streams.declare(nc.jetstream())
    try:
        event = ev.TenantConfigured(event_id=new_id(), occurred_at=datetime.now(UTC), tenant=tenant, **limits)
        await EventStore(nc.jetstream()).append(event, msg_id=new_id())
    finally:
        await nc.close()


def max_inflight_seen(history: list[tuple[int, ev.Event]]) -> dict[str, int]:
    """The most attempts each tenant ever had dispatched or running at once, replayed from the log."""
    live: dict[tuple[str, str], int] = {}
    now: dict[str, int] = {}
    peak: dict[str, int] = {}
    for _, e in history:
        if not isinstance(e, ev.JobEvent):
            continue
        key = (e.tenant, e.job_id)
        if isinstance(e, ev.JobDispatched):
            live[key] = e.attempt
            now[e.tenant] = now.get(e.tenant, 0) + 1
            peak[e.tenant] = max(peak.get(e.tenant, 0), now[e.tenant])
        elif isinstance(e, (ev.JobSucceeded, ev.JobFailed, ev.JobTimedOut, ev.JobCancelled, ev.JobLost)) and \
                live.get(key) == e.attempt:
            del live[key]
            now[e.tenant] -= 1
    return peak


def base(cluster: Cluster, workers: int = 1, slots: int = 4, **worker: object) -> None:
    cluster.start("scheduler", "scheduler", wait=False, tick_s=0.1, worker_lease_s=3)
    cluster.start("gateway", "gateway", wait=False)
    for i in range(workers):
        cluster.start(f"worker{i}", "worker", wait=False, slots=slots, worker_id=worker_id(f"w{i}"), sandbox="none",
                      **worker)
    for name in list(cluster.procs):
        cluster.wait_ready(name)


async def test_a_small_tenant_is_served_in_the_next_round_behind_a_large_backlog(cluster: Cluster) -> None:
    await configure(cluster.nats_url, "big", max_inflight=3, submit_rate_per_s=10_000)
    base(cluster, slots=4)
    async with cluster.client("big") as big, cluster.client("small") as small:
        await submit_many(big, 300, spec("sleep 0.5"))
        await wait_until(lambda: _running(big, 3), timeout=20, what="the big tenant to fill its quota")
        first = (await submit_many(small, 10, spec("sleep 0.1")))[0]
        started = await wait_until(lambda: _started(small, first), timeout=10, what="the small tenant's first job")
        assert started
    history = await log(cluster.nats_url)
    queued_at = next(seq for seq, e in history if isinstance(e, ev.JobQueued) and e.job_id == first)
    later = [e for seq, e in history if seq > queued_at and isinstance(e, ev.JobDispatched)]
    assert later and later[0].tenant == "small", "the next dispatch after small's first job queued must be small's"
    assert max_inflight_seen(history)["big"] <= 3


async def _running(client: httpx.AsyncClient, n: int) -> bool:
    stats = (await client.get("/v1/stats")).json()
    return any(t["running"] >= n for t in stats["tenants"])


async def _started(client: httpx.AsyncClient, job_id: str) -> bool:
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    return job["state"] in ("running", "succeeded")


async def test_a_gpu_job_waits_for_a_gpu_worker_and_then_runs_there(cluster: Cluster) -> None:
    base(cluster)
    async with cluster.client("acme") as client:
        gpu_job = (await submit_many(client, 1, spec("echo on gpu", resources={"gpu": 1})))[0]
        cpu_job = (await submit_many(client, 1, spec("echo on cpu")))[0]
        await wait_until(lambda: all_terminal(client, [cpu_job]), what="the cpu job")
        explained = await wait_until(lambda: _reason(client, gpu_job), what="an explanation for the gpu job")
        assert explained["reason"] == "no_worker_fits"
        await wait_until(lambda: _in_state(client, gpu_job, "queued"), what="the gpu job queued in the read model")
        cluster.start("gpu-worker", "worker", pool="gpu", gpu=1, worker_id=worker_id("g1"), sandbox="none")
        done = await wait_until(lambda: all_terminal(client, [gpu_job]), timeout=15, what="the gpu job")
        gpu = done[gpu_job]
        assert (gpu["state"], gpu["pool"], gpu["worker_id"]) == ("succeeded", "gpu", worker_id("g1"))


async def _reason(client: httpx.AsyncClient, job_id: str) -> dict[str, object] | None:
    response = await client.get(f"/v1/jobs/{job_id}/explain")
    body = response.json()
    return body if response.status_code == 200 and body.get("reason") == "no_worker_fits" else None


async def test_jobs_of_a_killed_worker_run_again_elsewhere_and_end_once(cluster: Cluster) -> None:
    base(cluster, workers=2, slots=3)
    async with cluster.client("acme") as client:
        ids = await submit_many(client, 6, spec("sleep 5"))  # seen all running at once even on a loaded machine
        await wait_until(lambda: _all_running(client, ids), timeout=15, what="six running jobs")
        victim = {j["worker_id"] for j in (await states(client, ids)).values()} - {W1}
        assert victim == {W0}
        killed_at = time.monotonic()
        cluster.kill("worker0")
        done = await wait_until(lambda: all_terminal(client, ids), timeout=40, what="every job to end")
        recovery = time.monotonic() - killed_at
    assert all(j["state"] == "succeeded" for j in done.values()), done
    rerun = [j for j in done.values() if j["attempt"] == 2]
    assert len(rerun) == 3 and all(j["worker_id"] == W1 for j in rerun)
    history = await log(cluster.nats_url)
    terminal = [e.job_id for _, e in history if isinstance(e, ev.JobSucceeded)]
    assert sorted(terminal) == sorted(ids), "each job reaches exactly one terminal event"
    assert sum(isinstance(e, ev.JobLost) for _, e in history) == 3
    assert recovery < 40


async def _all_running(client: httpx.AsyncClient, ids: list[str]) -> bool:
    return all(j["state"] == "running" for j in (await states(client, ids)).values())


async def test_a_standby_scheduler_takes_over_and_nothing_is_dispatched_twice(cluster: Cluster) -> None:
    cluster.start("s1", "scheduler", tick_s=0.1, scheduler_id="s1")
    cluster.start("s2", "scheduler", tick_s=0.1, scheduler_id="s2")
    cluster.start("gateway", "gateway")
    cluster.start("worker0", "worker", slots=8, worker_id=W0, sandbox="none")
    async with cluster.client("acme") as client:
        ids = await submit_many(client, 60, spec("sleep 0.2"))
        await wait_until(lambda: _some_done(client, ids, 8), timeout=60, what="some jobs done")
        cluster.kill("s1")
        done = await wait_until(lambda: all_terminal(client, ids), timeout=60, what="every job after the failover")
    assert all(j["state"] == "succeeded" for j in done.values())
    history = await log(cluster.nats_url)
    dispatches = [(e.job_id, e.attempt) for _, e in history if isinstance(e, ev.JobDispatched)]
    assert len(dispatches) == len(set(dispatches)), "an attempt was dispatched twice"
    assert "this scheduler is now active" in cluster.log("s2")


async def _some_done(client: httpx.AsyncClient, ids: list[str], n: int) -> bool:
    jobs = await states(client, ids[:n])
    return all(j["state"] == "succeeded" for j in jobs.values())


async def test_over_quota_submissions_get_429_with_retry_after_and_nothing_is_dropped(cluster: Cluster) -> None:
    await configure(cluster.nats_url, "tiny", max_queued=2)
    cluster.start("scheduler", "scheduler", tick_s=0.1)
    cluster.start("gateway", "gateway", decision_wait_s=5)  # decided in ms; a slow machine must not make it a 202
    async with cluster.client("tiny") as client:
        accepted = [await client.post("/v1/jobs", json=spec("true")) for _ in range(2)]
        assert [r.status_code for r in accepted] == [201, 201]
        refused = await client.post("/v1/jobs", json=spec("true"))
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        problem = refused.json()
        assert (problem["code"], problem["cause"]) == ("tenant_queue_full", "tenant_queue_full")
        assert problem["retry_after_s"] > 0
        rejected_id = problem["detail"]
        # A refused submission is recorded, not silently dropped, and reads so at once (from the log while the
        # read model has not folded it yet).
        job = (await client.get(f"/v1/jobs/{rejected_id}")).json()
        assert job["state"] == "rejected", job


async def _in_state(client: httpx.AsyncClient, job_id: str, state: str) -> bool:
    return bool((await client.get(f"/v1/jobs/{job_id}")).json()["state"] == state)


async def test_retries_follow_the_policy_and_a_queue_timeout_expires_a_job(cluster: Cluster) -> None:
    base(cluster)
    async with cluster.client("acme") as client:
        retried = (await submit_many(client, 1, spec("exit 7", retry={"max_attempts": 3, "backoff_s": 0.1,
                                                                          "retry_on_exit_codes": [7]})))[0]
        once = (await submit_many(client, 1, spec("exit 8", retry={"max_attempts": 3,
                                                                       "retry_on_exit_codes": [7]})))[0]
        stuck = (await submit_many(client, 1, spec("true", queue_timeout_s=0.5, resources={"pool": "nowhere"})))[0]
        done = await wait_until(lambda: all_terminal(client, [retried, once, stuck]), timeout=20, what="the jobs")
    assert (done[retried]["state"], done[retried]["attempt"], done[retried]["exit_code"]) == ("failed", 3, 7)
    assert (done[once]["state"], done[once]["attempt"]) == ("failed", 1)
    assert done[stuck]["state"] == "expired"
    history = await log(cluster.nats_url)
    assert sum(isinstance(e, ev.JobRetryScheduled) and e.job_id == retried for _, e in history) == 2


async def test_a_queued_job_is_cancelled_at_once(cluster: Cluster) -> None:
    cluster.start("scheduler", "scheduler", tick_s=0.1)
    cluster.start("gateway", "gateway")
    async with cluster.client("acme") as client:
        job_id = (await submit_many(client, 1, spec("true")))[0]
        nc = await streams.connect(cluster.nats_url, "test")
        store = EventStore(nc.jetstream())
        last = await store.last_seq("acme", job_id)
        cancel = ev.JobCancelRequested(event_id=new_id(), occurred_at=datetime.now(UTC), tenant="acme",
                                       job_id=job_id, requested_by="tester")
        await store.append(cancel, msg_id=f"{job_id}:cancel_requested", expect=last)
        await nc.close()
        done = await wait_until(lambda: all_terminal(client, [job_id]), timeout=10, what="the cancel")
    assert done[job_id]["state"] == "cancelled"


def test_a_rebuilt_scheduler_projection_equals_the_live_one(cluster: Cluster) -> None:
    base(cluster)

    async def run() -> None:
        async with cluster.client("acme") as a, cluster.client("globex") as g:
            ids = await submit_many(a, 20, spec("true")) + await submit_many(g, 5, spec("exit 1"))
            await wait_until(lambda: all_terminal(a, ids[:20]), what="acme's jobs")
            await wait_until(lambda: all_terminal(g, ids[20:]), what="globex's jobs")
        last = max(seq for seq, _ in await log(cluster.nats_url))
        await wait_until(lambda: _folded_up_to(cluster.database_url, last), what="the live projection to catch up")

    asyncio.run(run())
    env = {"XR_NATS_URL": cluster.nats_url, "XR_DATABASE_URL": cluster.database_url, "XR_JWT_SECRET": "x",
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "xrunner.scheduler", "rebuild"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rebuild equals the live projection" in result.stdout


async def _folded_up_to(database_url: str, seq: int) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        position = await conn.fetchval("SELECT position FROM scheduler.projection_position")
    finally:
        await conn.close()
    return position is not None and position >= seq


async def test_the_stats_snapshot_lists_the_tenants_queue_with_reasons(cluster: Cluster) -> None:
    cluster.start("scheduler", "scheduler", tick_s=0.1)
    cluster.start("gateway", "gateway")
    async with cluster.client("acme") as client:
        await submit_many(client, 3, spec("true"))
    nc = await streams.connect(cluster.nats_url, "test")
    kv = await nc.jetstream().key_value(subjects.STATS_BUCKET)

    async def snapshot() -> TenantStats | None:
        try:
            stats = codec.decode((await kv.get(tenant_stats_key("acme"))).value or b"", TenantStats)
        except Exception:
            return None
        return stats if stats.queued == 3 else None

    stats = await wait_until(snapshot, what="a snapshot with three queued jobs")
    await nc.close()
    assert [q.position for q in stats.head] == [1, 2, 3]
    assert {q.reason for q in stats.head} == {"no_worker_fits"}




async def test_a_stopping_worker_hands_its_running_jobs_back_and_they_finish_elsewhere(cluster: Cluster) -> None:
    base(cluster, workers=1, slots=2, drain_grace_s=0.5)
    async with cluster.client("acme") as client:
        # The first attempts outlast any slowness of the test machine; the reruns end at once.
        ids = await submit_many(client, 2, spec('[ "$XR_ATTEMPT" = 1 ] && sleep 60; true'))
        await wait_until(lambda: _all_running(client, ids), timeout=15, what="two running jobs")
        cluster.start("worker1", "worker", slots=2, worker_id=W1, sandbox="none")
        cluster.kill("worker0", signal.SIGTERM)
        done = await wait_until(lambda: all_terminal(client, ids), timeout=30, what="both jobs, elsewhere")
    assert all((j["state"], j["attempt"], j["worker_id"]) == ("succeeded", 2, W1) for j in done.values()), done
    history = await log(cluster.nats_url)
    assert not any(isinstance(e, ev.JobFailed) for _, e in history), "a handed-back attempt is not a failure"
    assert sum(isinstance(e, ev.JobLost) for _, e in history) == 2
