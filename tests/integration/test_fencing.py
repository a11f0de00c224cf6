"""Self-fencing with real processes: a worker frozen (SIGSTOP) past its lease has its jobs killed by its reaper
before the scheduler runs them again on another worker; thawed, it reports nothing for them. Each job records its
own execution (start, a tick every 0.1 s, end) in a file, so two executions alive at once would show."""

from __future__ import annotations

import itertools
import signal
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from integration.cluster import Cluster
from integration.test_scheduler import all_terminal
from integration.test_worker import TENANT, history, submit
from support import W0, W1, wait_until

from xrunner.contracts import events as ev
from xrunner.worker.lease import fence_marker, read_fences

LEASE_S, MARGIN_S = 2.0, 0.75  # the reaper fences at 1.25 s without a renewal, the scheduler loses at 2.75 s
JOBS, ROUNDS = 4, 3
FIRST_TICKS, RERUN_TICKS = 150, 5  # a first attempt outlives any pause by far; a rerun ends quickly
WORKERS = {"worker0": W0, "worker1": W1}


@dataclass
class Execution:
    """One process of one attempt of a job, from its own records: when it started and when it was last alive."""

    job_id: str
    attempt: int
    first: float
    last: float
    ended: bool


def job_body(run_file: Path) -> dict[str, object]:
    script = (f'mark() {{ echo "$1 $XR_JOB_ID $XR_ATTEMPT $$ $(date +%s.%N)" >> {run_file}; }}; mark start; '
              f'n={RERUN_TICKS}; [ "$XR_ATTEMPT" = 1 ] && n={FIRST_TICKS}; i=0; '
              'while [ $i -lt $n ]; do sleep 0.1; mark tick; i=$((i+1)); done; mark end')
    return {"workload": {"kind": "process", "argv": ["sh", "-c", script]}, "timeout_s": 120}


def executions(run_file: Path) -> list[Execution]:
    found: dict[tuple[str, int, int], Execution] = {}
    for line in run_file.read_text().splitlines():
        what, job_id, attempt, pid, at = line.split()
        key = (job_id, int(attempt), int(pid))
        run = found.setdefault(key, Execution(job_id, int(attempt), float(at), float(at), False))
        run.last, run.ended = max(run.last, float(at)), run.ended or what == "end"
    return list(found.values())


def overlaps(runs: list[Execution]) -> list[tuple[Execution, Execution]]:
    by_job: dict[str, list[Execution]] = defaultdict(list)
    for run in runs:
        by_job[run.job_id].append(run)
    found = []
    for mine in by_job.values():
        mine.sort(key=lambda r: r.first)
        found += [(a, b) for a, b in itertools.pairwise(mine) if b.first <= a.last]
    return found


def start(cluster: Cluster, tmp: Path) -> None:
    lease = {"worker_lease_s": LEASE_S, "worker_fence_margin_s": MARGIN_S}
    cluster.start("scheduler", "scheduler", wait=False, tick_s=0.1, **lease)
    cluster.start("gateway", "gateway", wait=False)
    for name, worker_id in WORKERS.items():
        cluster.start(name, "worker", wait=False, slots=JOBS, worker_id=worker_id, sandbox="none", heartbeat_s=0.25,
                      lease_s=LEASE_S, fence_margin_s=MARGIN_S, workspace_dir=tmp / name, drain_grace_s=0.5)
    for name in list(cluster.procs):
        cluster.wait_ready(name)


async def running_on(client: httpx.AsyncClient, ids: list[str]) -> dict[str, str] | None:
    """Each job's worker, once every job runs (its first attempt) and has started its process."""
    jobs = [(await client.get(f"/v1/jobs/{i}")).json() for i in ids]
    if all(j["state"] == "running" and j["attempt"] == 1 for j in jobs):
        return {j["id"]: j["worker_id"] for j in jobs}
    return None


async def rerun_elsewhere(client: httpx.AsyncClient, victims: list[str], paused: str) -> bool:
    """Every fenced job runs again (or ran) on another worker: the moment an unfenced first run would overlap."""
    jobs = [(await client.get(f"/v1/jobs/{i}")).json() for i in victims]
    return all(j["attempt"] > 1 and j["state"] in ("running", "succeeded") and j["worker_id"] != paused for j in jobs)


async def one_round(cluster: Cluster, client: httpx.AsyncClient, run_file: Path, tmp: Path,
                    fenced: dict[str, int]) -> None:
    ids = [await submit(client, job_body(run_file)) for _ in range(JOBS)]
    placed = await wait_until(lambda: running_on(client, ids), timeout=20, what="the round's jobs running")
    await wait_until(lambda: run_file.exists() and sum(line.startswith("start ") and line.split()[1] in ids
                                                       for line in run_file.read_text().splitlines()) == JOBS,
                     timeout=10, what="the jobs' processes started")
    paused = max(WORKERS.values(), key=lambda w: list(placed.values()).count(w))
    name = next(n for n, w in WORKERS.items() if w == paused)
    victims = [job_id for job_id, worker in placed.items() if worker == paused]
    cluster.procs[name].send_signal(signal.SIGSTOP)
    try:
        await wait_until(lambda: rerun_elsewhere(client, victims, paused), timeout=20, what="the fenced jobs rerun")
    finally:
        cluster.procs[name].send_signal(signal.SIGCONT)
    done = await wait_until(lambda: all_terminal(client, ids), timeout=30, what="every job of the round ended")
    assert {j["state"] for j in done.values()} == {"succeeded"}, done
    assert read_fences(fence_marker(tmp / name, paused)) > fenced.get(paused, 0), "the paused worker was fenced"
    fenced[paused] = read_fences(fence_marker(tmp / name, paused))
    await check_log(cluster, ids, victims, paused)


async def check_log(cluster: Cluster, ids: list[str], victims: list[str], paused: str) -> None:
    """One terminal event per job, a success; a fenced job's first attempt was lost, with nothing from its worker
    after the start, and its success came from another worker."""
    for job_id in ids:
        events = await history(cluster.nats_url, job_id)
        ends = [e for e in events if isinstance(e, ev.JobSucceeded | ev.JobFailed | ev.JobTimedOut | ev.JobCancelled)]
        assert [type(e) for e in ends] == [ev.JobSucceeded], (job_id, events)
        if job_id in victims:
            starts = {e.attempt: e.worker_id for e in events if isinstance(e, ev.JobStarted)}
            assert starts[1] == paused and starts[ends[0].attempt] != paused, (job_id, starts)
            assert any(isinstance(e, ev.JobLost) and e.attempt == 1 for e in events), (job_id, events)
            assert not [e for e in events if e.attempt == 1 and isinstance(e, ev.ArtifactStored)], job_id


@pytest.mark.timeout(150)
async def test_a_frozen_workers_jobs_are_killed_before_they_run_again_elsewhere(cluster: Cluster,
                                                                                tmp_path: Path) -> None:
    start(cluster, tmp_path)
    run_file = tmp_path / f"runs-{uuid.uuid4().hex}.log"
    fenced: dict[str, int] = {}
    async with cluster.client(TENANT) as client:
        for _ in range(ROUNDS):
            await one_round(cluster, client, run_file, tmp_path, fenced)
    runs = executions(run_file)
    assert not overlaps(runs), overlaps(runs)
    finished: dict[str, int] = defaultdict(int)
    for run in runs:
        finished[run.job_id] += run.ended
    assert len(finished) == JOBS * ROUNDS and set(finished.values()) == {1}, "every job's command ended once"
    assert sum(not run.ended for run in runs) >= ROUNDS, "each round killed at least one first run"
    for name in WORKERS:
        assert "Traceback" not in cluster.log(name), cluster.log(name)[-3000:]
