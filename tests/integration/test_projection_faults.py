"""Projections under faults in a real cluster: Postgres connections are cut while jobs flow, and every read model
still ends equal to a rebuild from the log."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import asyncpg
import httpx
from integration.cluster import Cluster
from integration.test_scheduler import log, submit_many
from support import wait_until

JOBS = 300
CUT_AT = (40, 120, 200)  # cut every connection when this many jobs have reached the gateway's read model


async def test_jobs_finish_and_projections_equal_a_rebuild_after_postgres_connections_are_cut(
    cluster: Cluster,
) -> None:
    await asyncio.to_thread(_start, cluster)
    async with cluster.client("acme") as client:
        cutter = asyncio.create_task(_cut_connections(cluster.database_url))
        ids = await submit_many(client, JOBS, {"workload": {"kind": "process", "argv": ["true"]}})
        cuts = await asyncio.wait_for(cutter, 45)
        done = await wait_until(lambda: _succeeded(client, JOBS), timeout=45, what="every job succeeded")
    assert cuts == len(CUT_AT)
    assert done == set(ids)
    last = max(seq for seq, _ in await log(cluster.nats_url))
    for schema in ("gateway", "scheduler"):
        await wait_until(lambda s=schema: _folded_up_to(cluster.database_url, s, last), what=f"{schema} to catch up")
        assert "rebuild equals the live projection" in await asyncio.to_thread(_rebuild, cluster, schema)


def _start(cluster: Cluster) -> None:
    """A scheduler, a gateway and two unsandboxed workers; the workers' ids are this test's own (they name the
    workers' cgroups on the host, which other test runs share)."""
    cluster.start("scheduler", "scheduler", wait=False, tick_s=0.1, worker_lease_s=3)
    cluster.start("gateway", "gateway", wait=False)
    run = uuid.uuid4().hex[:8]
    for i in range(2):
        cluster.start(f"worker{i}", "worker", wait=False, slots=16, worker_id=f"faults-{run}-{i}", sandbox="none")
    for name in list(cluster.procs):
        cluster.wait_ready(name)


async def _cut_connections(database_url: str) -> int:
    """Terminate every other backend of the test's database each time the read model passes a mark; returns the
    number of times connections were cut."""
    conn = await asyncpg.connect(database_url)
    try:
        for mark in CUT_AT:
            await wait_until(lambda m=mark: _jobs_seen(conn, m), timeout=40, what=f"{mark} jobs in the read model")
            cut = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cut > 0
    finally:
        await conn.close()
    return len(CUT_AT)


async def _jobs_seen(conn: asyncpg.Connection, n: int) -> bool:
    return await conn.fetchval("SELECT count(*) FROM gateway.jobs") >= n


async def _succeeded(client: httpx.AsyncClient, n: int) -> set[str] | None:
    """The ids of the caller's succeeded jobs, read from the gateway's read model; None until there are `n`."""
    response = await client.get("/v1/jobs", params={"state": "succeeded", "limit": 1000})
    if response.status_code != 200:
        return None
    ids = {job["id"] for job in response.json()["jobs"]}
    return ids if len(ids) >= n else None


async def _folded_up_to(database_url: str, schema: str, seq: int) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return (await conn.fetchval(f"SELECT max(position) FROM {schema}.projection_position") or 0) >= seq
    finally:
        await conn.close()


def _rebuild(cluster: Cluster, service: str) -> str:
    """`xrunner projections rebuild <service>` against the cluster; its report."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
    env |= {"XR_NATS_URL": cluster.nats_url, "XR_DATABASE_URL": cluster.database_url, "XR_JWT_SECRET": "x"}
    result = subprocess.run([sys.executable, "-m", "xrunner.cli", "projections", "rebuild", service], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
