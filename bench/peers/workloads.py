"""The four workloads (W1, W3, W4, W5), driven from one client process against any system through one interface:
submit one job per request, learn of its end by the system's own push notification."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cpu


@dataclass(frozen=True)
class Completion:
    """A job's end as the client learnt it: whether it succeeded, and when the push arrived (perf_counter)."""

    ok: bool
    at: float


class System(Protocol):
    """A job system under test, started and stopped by the harness."""

    name: str

    async def start(self) -> None: ...

    async def submit(self, argv: list[str]) -> asyncio.Future[Completion]:
        """Submit one job (one request); returns once the system accepted it, with a future for its end."""
        ...

    def roots(self) -> list[int]:
        """The processes whose trees are the system (its servers and workers; the jobs they spawn)."""
        ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    jobs: int
    argv: tuple[str, ...]
    sequential: bool  # one job at a time (latency) or all at once (makespan, throughput)


def workloads(quick: bool) -> dict[str, Workload]:
    def n(full: int) -> int:
        return 10 if quick else full

    return {w.key: w for w in (
        Workload("W1", "one `true` at a time, submit → done p50 / p99", n(200), ("true",), True),
        Workload("W3", f"{n(100):,} x `sleep 1`, makespan", n(100), ("sleep", "1"), False),
        Workload("W4", f"{n(1000):,} x `sleep 1`, makespan", n(1000), ("sleep", "1"), False),
        Workload("W5", f"{n(3000):,} x `true`, sustained", n(3000), ("true",), False),
    )}


async def warm_up(system: System, jobs: int = 3, timeout: float = 120.0) -> None:
    """A few jobs through the whole path (connections, code paths); the first also proves the system is ready."""
    for _ in range(jobs):
        try:
            end = await asyncio.wait_for(await system.submit(["true"]), timeout)
        except TimeoutError:
            raise RuntimeError(f"{system.name}: a warm-up job did not end within {timeout:.0f} s") from None
        if not end.ok:
            raise RuntimeError(f"{system.name}: a warm-up job failed")


async def run(system: System, workload: Workload, in_flight: int, timeout: float) -> dict[str, object]:
    """One repetition of `workload`: latency or makespan, jobs/s, and CPU per job of the system's processes."""
    before = cpu.snapshot(system.roots())
    began = time.perf_counter()
    if workload.sequential:
        latencies, ends = await _one_at_a_time(system, workload, timeout)
    else:
        latencies, ends = [], await _all_at_once(system, workload, in_flight, timeout)
    by_process = cpu.spent(before, cpu.snapshot(system.roots()))
    done = [e for e in ends if e is not None]
    last = max((e.at for e in done), default=time.perf_counter())
    result: dict[str, object] = {
        "jobs": workload.jobs, "completed": len(done), "succeeded": sum(e.ok for e in done),
        "lost": workload.jobs - len(done), "makespan_s": round(last - began, 4),
        "jobs_per_s": round(len(done) / (last - began), 1) if done else 0.0,
        "cpu_ms_per_job": round(sum(by_process.values()) * 1000 / workload.jobs, 3),
        "cpu_ms_per_job_by_process": {k: round(v * 1000 / workload.jobs, 3) for k, v in sorted(by_process.items())},
    }
    if latencies:
        result |= {"p50_ms": _quantile(latencies, 0.50), "p99_ms": _quantile(latencies, 0.99),
                   "mean_ms": round(statistics.fmean(latencies), 3)}
    return result


async def _one_at_a_time(system: System, workload: Workload,
                         timeout: float) -> tuple[list[float], list[Completion | None]]:
    latencies: list[float] = []
    ends: list[Completion | None] = []
    for _ in range(workload.jobs):
        began = time.perf_counter()
        try:
            end = await asyncio.wait_for(await system.submit(list(workload.argv)), timeout)
        except TimeoutError:
            ends.append(None)
            continue
        ends.append(end)
        latencies.append((end.at - began) * 1000)
    return latencies, ends


async def _all_at_once(system: System, workload: Workload, in_flight: int, timeout: float) -> list[Completion | None]:
    """Every job submitted as fast as `in_flight` concurrent requests allow; the ends collected as pushed."""
    gate = asyncio.Semaphore(in_flight)

    async def submit() -> asyncio.Future[Completion]:
        async with gate:
            return await system.submit(list(workload.argv))

    futures = await asyncio.gather(*(submit() for _ in range(workload.jobs)))
    await asyncio.wait(futures, timeout=timeout)
    return [f.result() if f.done() and not f.cancelled() else None for f in futures]


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)
