"""`xrunner bench`: a load test through the public API — submit N jobs (one request each, or in batches), follow
them through the job list, and report makespan, submit→started and submit→done percentiles, lost and re-runs."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from xrunner.contracts import codec
from xrunner.contracts.api import BatchAccepted, JobAccepted, JobList, JobView
from xrunner.contracts.lifecycle import is_terminal
from xrunner.servicekit.ids import new_id


@dataclass
class BenchResult:
    jobs: int
    tenants: int
    command: list[str]
    batch: int
    makespan_s: float
    submit_s: float
    submit_p50_ms: float
    submit_p99_ms: float
    started_ms: dict[str, float]
    done_ms: dict[str, float]
    states: dict[str, int]
    lost: int
    rerun: int
    rejected: int
    samples: dict[str, list[float]] = field(default_factory=dict)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 3),
            "mean": round(statistics.fmean(ordered), 3)}


class Bench:
    def __init__(self, http: httpx.AsyncClient, tokens: list[str], argv: list[str], concurrency: int) -> None:
        self.http, self.tokens, self.argv = http, tokens, argv
        self.run_id = new_id()
        self.gate = asyncio.Semaphore(concurrency)
        self.submit_ms: list[float] = []
        self.ids: dict[str, int] = {}  # job id -> tenant index
        self.rejected = 0

    def spec(self) -> dict[str, object]:
        return {"workload": {"kind": "process", "argv": self.argv}, "labels": {"bench": self.run_id}}

    def headers(self, tenant: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[tenant]}", "Content-Type": "application/json"}

    async def submit_one(self, i: int) -> None:
        tenant = i % len(self.tokens)
        async with self.gate:
            began = time.perf_counter()
            response = await self.http.post("/v1/jobs", content=codec.encode(self.spec()), headers=self.headers(tenant))
            self.submit_ms.append((time.perf_counter() - began) * 1000)
        if response.status_code == 429:
            self.rejected += 1
            return
        response.raise_for_status()
        self.ids[codec.decode(response.content, JobAccepted).job.id] = tenant

    async def submit_batch(self, tenant: int, n: int) -> None:
        body = codec.encode({"jobs": [self.spec()] * n})
        async with self.gate:
            began = time.perf_counter()
            response = await self.http.post("/v1/jobs/batch", content=body, headers=self.headers(tenant))
            self.submit_ms.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        for item in codec.decode(response.content, BatchAccepted).results:
            if item.problem is not None:
                self.rejected += 1
            elif item.job is not None:
                self.ids[item.job.id] = tenant

    async def follow(self, total: int, timeout: float, progress: Progress | None) -> list[JobView]:
        """Poll the job list (one request per tenant and page) until every job has ended or the time is up."""
        deadline = time.monotonic() + timeout
        task = progress.add_task("jobs done", total=total) if progress else None
        views: list[JobView] = []
        while time.monotonic() < deadline:
            views = [v for t in range(len(self.tokens)) for v in await self._list(t)]
            done = sum(1 for v in views if is_terminal(v.state))
            if progress is not None and task is not None:
                progress.update(task, completed=done)
            if done >= len(self.ids):
                break
            await asyncio.sleep(0.1)
        return views

    async def _list(self, tenant: int) -> list[JobView]:
        views: list[JobView] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"label": f"bench={self.run_id}", "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            response = await self.http.get("/v1/jobs", params=params, headers=self.headers(tenant))
            page = codec.decode(response.content, JobList)
            views += page.jobs
            if page.next_cursor is None:
                return views
            cursor = page.next_cursor


async def run_bench(api: str, tokens: list[str], argv: list[str], jobs: int, concurrency: int, timeout: float,
                    progress: bool = True, batch: int = 0) -> BenchResult:
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=api, timeout=120, limits=limits) as http:
        bench = Bench(http, tokens, argv, concurrency)
        began = time.perf_counter()
        if batch > 0:
            sizes = [min(batch, jobs - start) for start in range(0, jobs, batch)]
            await asyncio.gather(*(bench.submit_batch(i % len(tokens), n) for i, n in enumerate(sizes)))
        else:
            await asyncio.gather(*(bench.submit_one(i) for i in range(jobs)))
        submit_s = time.perf_counter() - began
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      disable=not progress) as bar:
            views = await bench.follow(jobs, timeout, bar if progress else None)
    return summarise(views, bench, jobs, batch, submit_s)


def _ms(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() * 1000 if a and b else None


def summarise(views: list[JobView], bench: Bench, jobs: int, batch: int, submit_s: float) -> BenchResult:
    mine = [v for v in views if v.id in bench.ids]
    started = [v for v in (_ms(j.created_at, j.started_at) for j in mine) if v is not None]
    done = [v for v in (_ms(j.created_at, j.finished_at) for j in mine if is_terminal(j.state)) if v is not None]
    states: dict[str, int] = {}
    for j in mine:
        states[j.state] = states.get(j.state, 0) + 1
    first = min((j.created_at for j in mine), default=None)
    last = max((j.finished_at for j in mine if j.finished_at), default=None)
    sub = percentiles(bench.submit_ms)
    return BenchResult(
        jobs=jobs, tenants=len(bench.tokens), command=bench.argv, batch=batch,
        makespan_s=round((last - first).total_seconds(), 3) if first and last else float("nan"),
        submit_s=round(submit_s, 3), submit_p50_ms=sub.get("p50", 0.0), submit_p99_ms=sub.get("p99", 0.0),
        started_ms=percentiles(started), done_ms=percentiles(done), states=states,
        lost=len(bench.ids) - sum(1 for j in mine if is_terminal(j.state)),
        rerun=sum(1 for j in mine if j.attempt > 1), rejected=bench.rejected,
        samples={"submit_to_started_ms": started, "submit_to_done_ms": done})
