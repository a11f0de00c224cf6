"""Independent deploys: while 500 jobs flow, each service is restarted alone (SIGTERM, then started again), the two
gateways and the two realtime edges one at a time. Nothing is lost, and the clients of the replica that stayed up
see no error: a client of the other gateway keeps submitting and reading, an SSE client of the other edge keeps
receiving. Each restart's time to ready is printed (docs/operations.md)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
from integration.cluster import SECRET, Cluster
from support import wait_until, worker_id

from xrunner.cli.edge import SseParser
from xrunner.contracts import events as ev
from xrunner.servicekit import streams
from xrunner.servicekit.auth import SCOPES, mint
from xrunner.servicekit.eventstore import EventStore

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

JOBS = 500  # at least; submitted at 8/s for as long as the restarts take
TENANT = "deploys"
PAIRS = {"gateway-a": "gateway-b", "gateway-b": "gateway-a", "realtime-a": "realtime-b", "realtime-b": "realtime-a"}
ORDER = ("gateway-a", "gateway-b", "realtime-a", "realtime-b", "scheduler-a", "scheduler-b", "worker-a", "worker-b",
         "artifacts")


@dataclass
class Load:
    """Submits and reads through whichever gateway is not being restarted, as a load balancer that took the other
    out of rotation would; every error is kept with the gateway that gave it."""

    cluster: Cluster
    clients: dict[str, httpx.AsyncClient]
    out_of_rotation: set[str] = field(default_factory=set)
    jobs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # from a gateway in rotation: what the promise is about
    while_restarting: list[str] = field(default_factory=list)  # from the one being restarted (in flight then)

    async def run(self, until: asyncio.Event, rate_per_s: float) -> None:
        """At `rate_per_s` until `until` is set (the restarts are over) and at least JOBS were submitted."""
        gate = asyncio.Semaphore(8)
        tasks = []
        for i in itertools.count():
            if until.is_set() and i >= JOBS:
                break
            await asyncio.sleep(1 / rate_per_s)
            await gate.acquire()
            serving = [g for g in ("gateway-a", "gateway-b") if g not in self.out_of_rotation]
            task = asyncio.create_task(self.one(serving[i % len(serving)]))
            task.add_done_callback(lambda _: gate.release())
            tasks.append(task)
        await asyncio.gather(*tasks)

    async def one(self, gateway: str) -> None:
        client = self.clients[gateway]
        body = {"workload": {"kind": "process", "argv": ["true"]}}
        try:
            answer = await client.post("/v1/jobs", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
            if answer.status_code not in (201, 202):
                self.complain(gateway, f"submit: {answer.status_code} {answer.text[:200]}")
                return
            job_id = answer.json()["job"]["id"]
            self.jobs.append(job_id)
            read = await client.get(f"/v1/jobs/{job_id}")
            if read.status_code != 200:
                self.complain(gateway, f"read: {read.status_code} {read.text[:200]}")
        except httpx.HTTPError as exc:
            self.complain(gateway, repr(exc))

    def complain(self, gateway: str, what: str) -> None:
        (self.while_restarting if gateway in self.out_of_rotation else self.errors).append(f"{gateway} {what}")


@dataclass
class Watcher:
    """An SSE client of one realtime edge, following the tenant's events; counts what it received and keeps how
    its stream ended (an edge that stays up must never end it)."""

    url: str
    token: str
    received: int = 0
    ended: str | None = None

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        parser = SseParser()
        try:
            async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=httpx.Timeout(30, read=60)) \
                    as client, client.stream("GET", "/v1/events") as response:
                if response.status_code != 200:
                    self.ended = f"status {response.status_code}"
                    return
                async for line in response.aiter_lines():
                    if (message := parser.feed(line)) is not None and message.event not in ("resync", "expired"):
                        self.received += 1
            self.ended = "the stream ended"
        except httpx.HTTPError as exc:
            self.ended = repr(exc)


def start_suite(cluster: Cluster) -> None:
    for name in ("scheduler-a", "scheduler-b"):
        cluster.start(name, "scheduler", wait=False, tick_s=0.1, scheduler_id=name)
    for name in ("gateway-a", "gateway-b", "artifacts"):
        cluster.start(name, name.split("-")[0], wait=False)
    for name in ("realtime-a", "realtime-b"):
        cluster.start(name, "realtime", wait=False, ping_s=1)
    for name in ("worker-a", "worker-b"):
        cluster.start(name, "worker", wait=False, slots=16, worker_id=worker_id(name), sandbox="none",
                      workspace_dir=cluster.logs / f"work-{name}")
    for name in list(cluster.procs):
        cluster.wait_ready(name, timeout=90)


async def restart(cluster: Cluster, name: str, settings: dict[str, object]) -> float:
    """SIGTERM `name`, wait for its exit, start it again; seconds from that start until it is ready."""
    await asyncio.to_thread(cluster.kill, name, signal.SIGTERM)
    started = time.monotonic()
    service = name.split("-")[0]
    await asyncio.to_thread(cluster.start, name, service, True, **settings)
    return time.monotonic() - started


def settings_of(cluster: Cluster, name: str) -> dict[str, object]:
    if name.startswith("scheduler"):
        return {"tick_s": 0.1, "scheduler_id": name}
    if name.startswith("realtime"):
        return {"ping_s": 1}
    if name.startswith("worker"):
        return {"slots": 16, "worker_id": worker_id(name), "sandbox": "none",
                "workspace_dir": cluster.logs / f"work-{name}"}
    return {}


async def judge(cluster: Cluster, jobs: list[str]) -> tuple[list[str], list[str], Counter[str]]:
    """Lost (no end in the log) and duplicated (two ends, or an attempt started twice) jobs, and how they ended."""
    nc = await streams.connect(cluster.nats_url, "test-judge")
    store, lost, duplicated, ends = EventStore(nc.jetstream()), [], [], Counter[str]()
    try:
        for job_id in jobs:
            history = [e for _, e in await store.history(TENANT, job_id)]
            terminal = [e for e in history if isinstance(e, (ev.JobSucceeded, ev.JobCancelled, ev.JobTimedOut,
                                                              ev.JobExpired, ev.JobRejected))
                        or (isinstance(e, ev.JobFailed) and e.final)]
            started = Counter(e.attempt for e in history if isinstance(e, ev.JobStarted))
            ends.update(type(e).__name__ for e in terminal[:1])
            if not terminal:
                lost.append(job_id)
            if len(terminal) > 1 or any(n > 1 for n in started.values()):
                duplicated.append(job_id)
    finally:
        await nc.close()
    return lost, duplicated, ends


async def test_restarting_each_service_alone_under_load_loses_nothing_and_the_other_replica_serves(
    cluster: Cluster,
) -> None:
    start_suite(cluster)
    token = mint(SECRET, tenant=TENANT, subject="deployer", scopes=list(SCOPES), issuer="xrunner",
                 audience="xrunner", ttl_s=900, now=int(time.time()))
    clients = {g: httpx.AsyncClient(base_url=cluster.api(g), headers={"Authorization": f"Bearer {token}"},
                                    timeout=30) for g in ("gateway-a", "gateway-b")}
    load, done = Load(cluster, clients), asyncio.Event()
    running = asyncio.create_task(load.run(done, rate_per_s=8.0))
    ready_s: dict[str, float] = {}
    complaints: list[str] = []
    try:
        for name in ORDER:
            twin = PAIRS.get(name)
            watcher = None
            if name.startswith("gateway"):
                load.out_of_rotation = {name}
            if name.startswith("realtime") and twin is not None:
                watcher = Watcher(cluster.api(twin), token)
                watching = asyncio.create_task(watcher.run())
                await wait_until(lambda w=watcher: w.received > 0, timeout=30, what=f"events through {twin}")
                before = watcher.received
            ready_s[name] = await restart(cluster, name, settings_of(cluster, name))
            if name in clients:  # back in rotation at its new address (a new pod's)
                clients[name].base_url = httpx.URL(cluster.api(name))
            load.out_of_rotation = set()
            if watcher is not None:
                await wait_until(lambda w=watcher, b=before: w.received > b, timeout=30,
                                 what=f"events through {twin} after {name} restarted")
                if watcher.ended is not None:
                    complaints.append(f"the SSE stream of {twin} ended while {name} restarted: {watcher.ended}")
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
        done.set()
        await running
    finally:
        done.set()
        for client in clients.values():
            await client.aclose()
    print(f"ready after restart (s): {ready_s}; errors at the restarting gateway: {load.while_restarting[:5]}")
    assert load.errors == [], f"{len(load.errors)} errors at the replica that stayed up: {load.errors[:5]}"
    assert complaints == []
    assert len(load.jobs) >= JOBS

    async def all_ended() -> bool:
        lost, _, _ = await judge(cluster, load.jobs)
        return not lost

    await wait_until(all_ended, timeout=90, interval=1.0, what="every job ended in the log")
    lost, duplicated, ends = await judge(cluster, load.jobs)
    assert (lost, duplicated) == ([], [])
    assert ends == Counter({"JobSucceeded": len(load.jobs)})
