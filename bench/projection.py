"""The gateway's `jobs` projection alone: CPU per job of folding a job's six events (submitted … succeeded, the
golden samples under fresh job ids, each job's events in six successive batches as a steady stream brings them)
into Postgres, one row write per statement (`executemany`, as before) against one set-based statement per batch
(`unnest`, as now). A private Postgres (embedded, fsync off); the client's CPU
and the backend's (utime + stime from /proc) are counted apart. Writes bench/results/cpu-projection.json.

    .venv/bin/python bench/projection.py --jobs 3000 --batch 48
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import asyncpg
import msgspec

from xrunner.cli import embedded
from xrunner.contracts import codec
from xrunner.contracts.events import Event
from xrunner.gateway.readmodel import QUERIES, JobsProjection
from xrunner.servicekit.projector import fold_batch

RESULTS = Path(__file__).parent / "results"
GOLDEN = Path(__file__).parents[1] / "tests" / "golden" / "events"
LIFE = ("job.submitted.v1", "job.queued.v1", "job.dispatched.v1", "job.started.v1", "artifact.stored.v1",
        "job.succeeded.v1")
PER_ROW = """INSERT INTO jobs (tenant, id, state, created_at, updated_at, version, view)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
ON CONFLICT (tenant, id) DO UPDATE
  SET state = excluded.state, updated_at = excluded.updated_at, version = excluded.version, view = excluded.view
  WHERE jobs.version < excluded.version"""
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


class PerRow(JobsProjection):
    """The projection as it was: one upsert per job, pipelined by executemany."""

    async def apply(self, conn: asyncpg.Connection, batch: list[tuple[int, Event]]) -> None:  # type: ignore[override]
        from xrunner.servicekit import jobviews

        views = await jobviews.fold_batch(conn, batch)
        rows = [(v.tenant, v.id, v.state, v.created_at, v.updated_at, v.version, codec.encode(v).decode())
                for v in views.values() if v is not None]
        await conn.executemany(PER_ROW, rows)


def events(jobs: int, batch: int) -> list[list[tuple[int, Event]]]:
    """The jobs' events in batches of `batch`, as a steady stream of concurrent jobs brings them: groups of jobs
    move one stage (event) per batch, so a batch holds one event of each of `batch` jobs, a job's six events
    span six batches, and every batch writes `batch` rows."""
    samples = [codec.decode_event((GOLDEN / f"{name}.json").read_bytes()) for name in LIFE]
    per_group = max(1, batch // len(LIFE))
    groups = [[f"job{n:07d}" for n in range(first, min(jobs, first + per_group))]
              for first in range(0, jobs, per_group)]
    stream: list[Event] = []
    for step in range(len(groups) + len(LIFE) - 1):
        for stage, sample in enumerate(samples):
            if 0 <= step - stage < len(groups):
                stream += [msgspec.structs.replace(sample, job_id=i) for i in groups[step - stage]]  # type: ignore[type-var]
    numbered = list(enumerate(stream, start=1))
    return [numbered[i : i + batch] for i in range(0, len(numbered), batch)]


def backend_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


async def measure(url: str, projection: JobsProjection, batches: list[list[tuple[int, Event]]]) -> dict[str, float]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE jobs, projection_position")
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        began, client, backend = time.perf_counter(), time.process_time(), backend_ms(pid)
        for batch in batches:
            async with conn.transaction():
                await fold_batch(conn, projection, batch)
        return {"wall_s": time.perf_counter() - began, "client_ms": (time.process_time() - client) * 1000,
                "postgres_ms": backend_ms(pid) - backend}
    finally:
        await conn.close()


async def run(jobs: int, batch: int, reps: int) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="xr-proj-"))
    port = embedded.free_port()
    pg = embedded.start_postgres(root / "pg", port, fast=True)
    try:
        url = embedded.database_url("127.0.0.1", port)
        conn = await asyncpg.connect(url)
        sql = Path(__file__).parents[1] / "services/gateway/src/xrunner/gateway/sql"
        for migration in sorted(sql.glob("0*.sql")):
            await conn.execute(migration.read_text())
        await conn.close()
        batches = events(jobs, batch)
        out: dict[str, list[dict[str, float]]] = {"per_row": [], "unnest": []}
        for _ in range(reps):  # alternate, so drift in the machine's load hits both alike
            out["per_row"].append(await measure(url, PerRow(), batches))
            out["unnest"].append(await measure(url, JobsProjection(), batches))
    finally:
        embedded.stop(pg)
    assert "upsert_jobs" in QUERIES
    best = {k: min(v, key=lambda r: r["client_ms"] + r["postgres_ms"]) for k, v in out.items()}
    return {"jobs": jobs, "batch_events": batch, "reps": reps,
            "per_job_ms": {k: {m: round(x / jobs, 4) for m, x in r.items() if m != "wall_s"} for k, r in best.items()},
            "runs": out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=48, help="events per batch (transaction)")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()
    result = asyncio.run(run(args.jobs, args.batch, args.reps))
    result |= {"load_before": [round(x, 2) for x in load], "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"cpu-projection-batch{args.batch}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["per_job_ms"], indent=2), load)


if __name__ == "__main__":
    main()
