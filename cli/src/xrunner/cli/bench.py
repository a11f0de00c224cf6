"""`xrunner bench`: a load test through the public API — submit N jobs, follow them to the end, report latencies."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from xrunner.contracts import codec
from xrunner.contracts.api import JobAccepted, JobView
from xrunner.contracts.lifecycle import is_terminal


@dataclass
class BenchResult:
    jobs: int
    tenants: int
    command: list[str]
    makespan_s: float
    submit_p50_ms: float
    submit_p99_ms: float
    started_ms: dict[str, float]
    done_ms: dict[str, float]
    states: dict[str, int]
    lost: int
    rerun: int
    rejected: int
    samples: dict[str, list[float]] = field(default_factory=dict)


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


async def run_bench(
    api: str, tokens: list[str], argv: list[str], jobs: int, concurrency: int, timeout: float, progress: bool = True
) -> BenchResult:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=api, timeout=60, limits=limits) as http:
        gate = asyncio.Semaphore(concurrency)
        polls = asyncio.Semaphore(4)  # following jobs must not crowd out the submissions being measured
        body = codec.encode({"workload": {"kind": "process", "argv": argv}})
        submit_ms: list[float] = []
        views: dict[str, JobView] = {}
        rejected = 0

        async def one(i: int) -> None:
            nonlocal rejected
            headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}", "Content-Type": "application/json"}
            async with gate:
                began = time.perf_counter()
                response = await http.post("/v1/jobs", content=body, headers=headers)
                submit_ms.append((time.perf_counter() - began) * 1000)
            if response.status_code == 429:
                rejected += 1
                return
            response.raise_for_status()
            job = codec.decode(response.content, JobAccepted).job
            views[job.id] = await _follow(http, polls, headers, job, timeout)
            bar.update(task, advance=1)

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not progress,
        ) as bar:
            task = bar.add_task("jobs done", total=jobs)
            await asyncio.gather(*(one(i) for i in range(jobs)))
    return _summarise(list(views.values()), submit_ms, argv, jobs, len(tokens), rejected)


async def _follow(
    http: httpx.AsyncClient, gate: asyncio.Semaphore, headers: dict[str, str], job: JobView, timeout: float
) -> JobView:
    deadline = time.monotonic() + timeout
    view, delay = job, 0.2
    while not is_terminal(view.state) and time.monotonic() < deadline:
        await asyncio.sleep(delay)
        delay = min(1.0, delay * 1.5)
        async with gate:
            response = await http.get(f"/v1/jobs/{job.id}", headers=headers)
        try:
            view = codec.decode(response.content, JobView)
        except msgspec.MsgspecError:
            continue
    return view


def _ms(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() * 1000 if a and b else None


def _summarise(
    views: list[JobView], submit_ms: list[float], argv: list[str], jobs: int, tenants: int, rejected: int
) -> BenchResult:
    started = [v for v in (_ms(j.created_at, j.started_at) for j in views) if v is not None]
    done = [v for v in (_ms(j.created_at, j.finished_at) for j in views if is_terminal(j.state)) if v is not None]
    states: dict[str, int] = {}
    for j in views:
        states[j.state] = states.get(j.state, 0) + 1
    first = min((j.created_at for j in views), default=None)
    last = max((j.finished_at for j in views if j.finished_at), default=None)
    makespan = (last - first).total_seconds() if first and last else float("nan")
    sub = _pct(submit_ms)
    return BenchResult(
        jobs=jobs,
        tenants=tenants,
        command=argv,
        makespan_s=round(makespan, 3),
        submit_p50_ms=sub.get("p50", 0.0),
        submit_p99_ms=sub.get("p99", 0.0),
        started_ms=_pct(started),
        done_ms=_pct(done),
        states=states,
        lost=sum(1 for j in views if not is_terminal(j.state)) + (jobs - len(views) - rejected),
        rerun=sum(1 for j in views if j.attempt > 1),
        rejected=rejected,
        samples={"submit_to_started_ms": started, "submit_to_done_ms": done},
    )
