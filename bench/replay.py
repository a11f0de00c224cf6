"""Replay at scale on a private nats-server and Postgres: import an NDJSON history of `--jobs` jobs (six events each,
the golden samples under fresh ids, jobs interleaved as concurrent jobs are), export it back, rebuild the gateway's
read model from the whole log, and ask the API for a job of `--job-events` events as of random points of its
history (`GET /v1/jobs/{id}?as_of=SEQ` over HTTP, as production serves it). Writes bench/results/replay.json.

    .venv/bin/python bench/replay.py --jobs 20000 --job-events 1000 --asof-requests 500
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec

from xrunner.cli import embedded
from xrunner.contracts import codec, subjects
from xrunner.contracts.events import ArtifactStored, Event, JobEvent
from xrunner.gateway.app import MIGRATIONS, Infra, create_app
from xrunner.gateway.readmodel import JobsProjection
from xrunner.gateway.settings import GatewaySettings
from xrunner.servicekit import db, history, streams
from xrunner.servicekit.auth import JwtVerifier, mint
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.http import HttpServer
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.importer import import_history
from xrunner.servicekit.projector import rebuild

RESULTS = Path(__file__).parent / "results"
GOLDEN = Path(__file__).parents[1] / "tests" / "golden" / "events"
LIFE = ("job.submitted.v1", "job.queued.v1", "job.dispatched.v1", "job.started.v1", "artifact.stored.v1",
        "job.succeeded.v1")
SECRET = "a-bench-secret-of-at-least-32-bytes"
GROUP = 100  # jobs that move one stage at a time, interleaving their events in the log


def ndjson(jobs: int) -> bytes:
    """An export of `jobs` jobs' lives, six events each, interleaved in groups."""
    samples = [codec.decode_event((GOLDEN / f"{name}.json").read_bytes()) for name in LIFE]
    out, seq = io.BytesIO(), 0
    for first in range(0, jobs, GROUP):
        ids = [new_id() for _ in range(first, min(jobs, first + GROUP))]
        for sample in samples:
            for job in ids:
                event = msgspec.structs.replace(sample, job_id=job, tenant="bench", event_id=new_id())  # type: ignore[type-var]
                seq += 1
                record = history.Record(seq, subjects.event_subject(event), msgspec.Raw(codec.encode(event)))
                out.write(history.encode_record(record))
    return out.getvalue()


TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


class Clock:
    """Wall time, and the CPU time of this process and of the servers it names, from its start."""

    def __init__(self, **servers: int) -> None:
        self.servers = servers
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.server_cpu = {name: cpu_s(pid) for name, pid in servers.items()}

    def rate(self, events: int) -> dict[str, float]:
        """Events per second of wall time, and per second of CPU (all the processes counted): what one free core
        would do, whatever else the machine was running."""
        wall = time.perf_counter() - self.wall
        cpu = {"client": time.process_time() - self.cpu}
        cpu |= {name: cpu_s(pid) - self.server_cpu[name] for name, pid in self.servers.items()}
        total = sum(cpu.values())
        return {"events": events, "seconds": round(wall, 3), "events_per_s": round(events / wall),
                "cpu_s": {k: round(v, 3) for k, v in cpu.items()}, "events_per_cpu_s": round(events / total)}


async def long_job(store: EventStore, events: int) -> str:
    """A job with `events` events: its life, with an artifact stored after each of many steps."""
    samples = [codec.decode_event((GOLDEN / f"{name}.json").read_bytes()) for name in LIFE]
    job, last, at = new_id(), 0, datetime(2026, 1, 1, tzinfo=UTC)
    artifact = samples[4]
    life = samples[:4] + [artifact] * (events - 5) + samples[5:]
    for i, sample in enumerate(life):
        event: Event = msgspec.structs.replace(sample, job_id=job, tenant="bench", event_id=new_id(),  # type: ignore[type-var]
                                               occurred_at=at + timedelta(milliseconds=i))
        if isinstance(event, ArtifactStored):
            event = msgspec.structs.replace(event, artifact_id=new_id())
        assert isinstance(event, JobEvent)
        last = (await store.append(event, msg_id=event.event_id, expect=last)).seq
    return job


async def as_of_latencies(app_infra: Infra, job: str, points: list[int]) -> list[float]:
    server = HttpServer(create_app(GatewaySettings(request_rate_per_s=0.0), app_infra), "127.0.0.1", 0)
    port = await server.start()
    token = mint(SECRET, tenant="bench", subject="bench", scopes=["jobs:read"], issuer="xrunner",
                 audience="xrunner", ttl_s=3600, now=int(time.time()))
    took: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            for point in points:
                began = time.perf_counter()
                response = await http.get(f"/v1/jobs/{job}", params={"as_of": point})
                took.append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200, response.text
    finally:
        await server.stop()
    return took


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)


async def run(jobs: int, job_events: int, requests: int) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="xr-replay-"))
    nats_port, pg_port = embedded.free_port(), embedded.free_port()
    nats = embedded.start_nats(root / "nats", nats_port, log_file=root / "nats.log")
    pg = embedded.start_postgres(root / "pg", pg_port, fast=True)
    result: dict[str, object] = {}
    try:
        nc = await streams.connect(f"nats://127.0.0.1:{nats_port}", "bench")
        js = nc.jetstream()
        await streams.declare(js)
        data = ndjson(jobs)
        clock = Clock(nats=nats.pid)
        imported = await import_history(nc, io.BytesIO(data), history.check(io.BytesIO(data)))
        result["import"] = clock.rate(imported.appended)
        out = io.BytesIO()
        clock = Clock(nats=nats.pid)
        result["export"] = clock.rate(await history.export(js, history.Filter(), out))
        assert len(out.getvalue().splitlines()) == jobs * len(LIFE)

        url = embedded.database_url("127.0.0.1", pg_port)
        pool = await db.create_pool(url, "gateway")
        async with pool.acquire() as conn:
            await db.migrate(conn, "gateway", db.migration_files(MIGRATIONS))
            clock = Clock(nats=nats.pid, postgres=await conn.fetchval("SELECT pg_backend_pid()"))
            result["rebuild"] = clock.rate(await rebuild(js, conn, JobsProjection(), "gateway"))

        job = await long_job(EventStore(js), job_events)
        seqs = [seq for seq, _ in await EventStore(js).history("bench", job)]
        points = [random.choice(seqs) for _ in range(requests)]

        async def ready() -> dict[str, bool]:
            return {"nats": True}

        infra = Infra(nc, js, pool, JwtVerifier(SECRET, issuer="xrunner", audience="xrunner"), ready)
        took = await as_of_latencies(infra, job, points)
        result["as_of"] = {"job_events": len(seqs), "requests": requests, "p50_ms": percentile(took, 50),
                           "p99_ms": percentile(took, 99), "max_ms": round(max(took), 2)}
        await pool.close()
        await nc.close()
    finally:
        embedded.stop(nats)
        embedded.stop(pg)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--job-events", type=int, default=1000)
    parser.add_argument("--asof-requests", type=int, default=500)
    args = parser.parse_args()
    load = os.getloadavg()
    result = asyncio.run(run(args.jobs, args.job_events, args.asof_requests))
    result |= {"jobs": args.jobs, "load_before": [round(x, 2) for x in load],
               "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replay.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
