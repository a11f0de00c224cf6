"""The chaos client: submits jobs that record their own executions, remembers every answer, and afterwards observes
the log, the API, the read model and the rebuilds, bounded in time, into what the checker judges."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from chaos.checker import ACCEPTED, History, Observed, Submit, is_terminal_event, known_jobs, parse_runs
from chaos.nemesis import ChaosCluster

from xrunner.contracts import events as ev
from xrunner.contracts import lifecycle, subjects
from xrunner.servicekit import streams
from xrunner.servicekit.eventstore import EventStore

TENANTS = ("t1", "t2", "t3")
PROBE_TENANT = "t0"  # probes have a tenant of their own, so fair share serves them ahead of the backlog
TICK_S = 0.2
CONCURRENCY = 32


def job_body(run_file: Path, ticks: int) -> dict[str, object]:
    """A job whose command appends `start`, `ticks` x `tick` and `end` lines (job, attempt, shell pid, time) to
    `run_file`: small O_APPEND writes, so concurrent executions never tear each other's lines."""
    script = (f'mark() {{ echo "$1 $XR_JOB_ID $XR_ATTEMPT $$ $(date +%s.%N)" >> {run_file}; }}; mark start; i=0; '
              f"while [ $i -lt {ticks} ]; do sleep {TICK_S}; mark tick; i=$((i+1)); done; mark end")
    return {"workload": {"kind": "process", "argv": ["sh", "-c", script]}}


@dataclass
class Client:
    """One HTTP client per tenant and the submits made so far, in order."""

    cluster: ChaosCluster
    run_file: Path
    submits: list[Submit] = field(default_factory=list)
    http: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    async def __aenter__(self) -> Client:
        for tenant in (*TENANTS, PROBE_TENANT):
            self.http[tenant] = self.cluster.services.client(tenant)
            self.http[tenant].timeout = httpx.Timeout(10.0)
        return self

    async def __aexit__(self, *_: object) -> None:
        for client in self.http.values():
            await client.aclose()

    async def submit(self, tenant: str, ticks: int) -> Submit:
        """One submit with an Idempotency-Key; no answer (error, timeout) is recorded as status None."""
        key = uuid.uuid4().hex
        try:
            response = await self.http[tenant].post("/v1/jobs", json=job_body(self.run_file, ticks),
                                                    headers={"Idempotency-Key": key})
            status, job_id = response.status_code, _job_id(response)
        except httpx.HTTPError:
            status, job_id = None, None
        submit = Submit(key, tenant, status, job_id, time.time())
        self.submits.append(submit)
        return submit

    async def load(self, jobs: int, over_s: float, ticks: int) -> None:
        """`jobs` submits paced evenly over `over_s` seconds, round-robin over the tenants."""
        gate = asyncio.Semaphore(CONCURRENCY)
        start = asyncio.get_running_loop().time()

        async def one(i: int, tenant: str) -> None:
            await asyncio.sleep(max(0.0, start + i * over_s / jobs - asyncio.get_running_loop().time()))
            async with gate:
                await self.submit(tenant, ticks)

        await asyncio.gather(*(one(i, t) for i, t in zip(range(jobs), itertools.cycle(TENANTS), strict=False)))

    async def state(self, tenant: str, job_id: str) -> str | None:
        try:
            response = await self.http[tenant].get(f"/v1/jobs/{job_id}")
        except httpx.HTTPError:
            return None
        return str(response.json()["state"]) if response.status_code == 200 else None

    async def states(self, jobs: Mapping[str, str]) -> dict[str, str | None]:
        """The API's state of each job (id -> tenant)."""
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(job_id: str, tenant: str) -> tuple[str, str | None]:
            async with gate:
                return job_id, await self.state(tenant, job_id)

        return dict(await asyncio.gather(*(one(j, t) for j, t in jobs.items())))

    async def recovery(self, since: float, timeout_s: float) -> float | None:
        """Seconds from `since` (the fault) until a job submitted after it is done: a probe every 0.5 s, each
        watched until it ends; None when none succeeds within `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        probes: set[asyncio.Task[Submit]] = set()
        accepted: list[Submit] = []
        last_probe = -1.0
        while loop.time() < deadline:
            if loop.time() - last_probe >= 0.5:
                probes.add(asyncio.create_task(self.submit(PROBE_TENANT, ticks=0)))
                last_probe = loop.time()
            accepted += [p.result() for p in probes if p.done() and p.result().job_id]
            probes = {p for p in probes if not p.done()}
            states = await asyncio.gather(*(self.state(s.tenant, s.job_id or "") for s in accepted))
            if "succeeded" in states:
                return time.time() - since
            await asyncio.sleep(0.05)
        return None


def _job_id(response: httpx.Response) -> str | None:
    body = response.json() if response.headers.get("content-type", "").endswith("json") else {}
    if response.status_code in ACCEPTED and response.status_code != 429:
        return str(body["job"]["id"])
    return str(body["detail"]) if response.status_code == 429 and body.get("detail") else None


async def read_log(nats_url: str) -> dict[str, History]:
    """Every job's history in XR_EVENTS, by job id."""
    nc = await streams.connect(nats_url, "chaos-observer")
    try:
        histories: dict[str, History] = {}
        async for seq, event in EventStore(nc.jetstream()).read(subjects.JOB_EVENTS_ALL):
            if isinstance(event, ev.JobEvent):
                histories.setdefault(event.job_id, []).append((seq, event))
        return histories
    finally:
        await nc.close()


async def read_model(database_url: str) -> dict[str, tuple[str, int]]:
    """The gateway's read model: (state, version) of each job."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id, state, version FROM gateway.jobs")
        return {r["id"]: (r["state"], r["version"]) for r in rows}
    finally:
        await conn.close()


def rebuild(cluster: ChaosCluster, service: str) -> str | None:
    """`xrunner projections rebuild SERVICE`: None when the rebuild equals the live projection, else its report."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
    env |= {"XR_NATS_URL": cluster.nats.url, "XR_DATABASE_URL": cluster.database_url}
    done = subprocess.run([sys.executable, "-m", "xrunner.cli", "projections", "rebuild", service], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode == 0:
        return None
    report = [line for line in (done.stdout + done.stderr).splitlines() if "DIFFERENT" in line or "Error" in line]
    return f"exit {done.returncode}: " + ("; ".join(report) or (done.stdout + done.stderr)[-500:])[:1500]


def tenants_of(submits: Iterable[Submit], log: Mapping[str, History]) -> dict[str, str]:
    """Each known job's tenant (the log's word first, the submit's otherwise)."""
    jobs = known_jobs(list(submits), log)
    by_submit = {s.job_id: s.tenant for s in submits if s.job_id}
    return {j: (log[j][0][1].tenant if j in log and isinstance(log[j][0][1], ev.JobEvent) else by_submit.get(j, "t1"))
            for j in jobs}


async def settle(client: Client, timeout_s: float) -> None:
    """Wait, at most `timeout_s`, until every known job has ended in the log and in the API, then (at most 5 s
    more) until the read model has folded what the log holds. Does not fail: the checker judges what is left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    confirmed: set[str] = set()
    while loop.time() < deadline:
        log = await read_log(client.cluster.nats.url)
        tenants = tenants_of(client.submits, log)
        ended = {j: t for j, t in tenants.items() if j not in confirmed and _ended(log.get(j, []))}
        states = await client.states(ended)
        confirmed |= {j for j, s in states.items() if s and lifecycle.is_terminal(s)}
        if confirmed >= tenants.keys():
            break
        await asyncio.sleep(0.5)
    deadline = loop.time() + 5.0
    while loop.time() < deadline and not await _read_model_caught_up(client):
        await asyncio.sleep(0.2)


def _ended(history: History) -> bool:
    return any(is_terminal_event(e) for _, e in history)


async def _read_model_caught_up(client: Client) -> bool:
    log = await read_log(client.cluster.nats.url)
    rows = await read_model(client.cluster.database_url)
    for job_id in tenants_of(client.submits, log):
        folded = lifecycle.replay(log.get(job_id, []))
        if rows.get(job_id) != ((folded.state, folded.version) if folded else None):
            return False
    return True


async def observe(client: Client) -> Observed:
    """Everything the checker needs, read once after `settle`."""
    log = await read_log(client.cluster.nats.url)
    api = await client.states(tenants_of(client.submits, log))
    rows = await read_model(client.cluster.database_url)
    rebuilds = {s: await asyncio.to_thread(rebuild, client.cluster, s) for s in ("gateway", "scheduler")}
    lines = client.run_file.read_text().splitlines() if client.run_file.exists() else []
    return Observed(submits=list(client.submits), log=log, api=api, read_model=rows, runs=parse_runs(lines),
                    rebuilds=rebuilds)
