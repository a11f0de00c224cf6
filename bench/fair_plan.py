"""What one scheduling round costs the scheduler's CPU with a backlog: `reconcile` with nothing dirty (the round that
only plans dispatches) and the fair plan alone, over N queued jobs of 3 tenants that no worker serves (their pool has
none; the default pool has 200 free slots), as in `bench/run.py api`, where 500 submits a second build such a backlog.

    .venv/bin/python bench/fair_plan.py --queued 1000 10000 --tag after

Results go to bench/results/fair-plan-<tag>.json and a line in bench/results/SUMMARY.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec

from xrunner.contracts import events as ev
from xrunner.contracts.messages import WorkerHeartbeat
from xrunner.contracts.spec import JobSpec, ProcessWorkload, Resources
from xrunner.contracts.stats import TenantLimits
from xrunner.scheduler import fairness, placement
from xrunner.scheduler.reconcile import Round, reconcile
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.scheduler.state import SchedulerState

RESULTS = os.path.join(os.path.dirname(__file__), "results")
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LIMITS = TenantLimits(weight=1.0, max_inflight=1000, max_queued=100_000, submit_rate_per_s=1000.0)


def backlog(queued: int) -> SchedulerState:
    state = SchedulerState(LIMITS)
    spec = JobSpec(workload=ProcessWorkload(argv=["true"]), resources=Resources(pool="nowhere"))
    seq = 0
    for i in range(queued):
        tenant, job_id, at = f"t{i % 3}", f"j{i:08d}", T0 + timedelta(milliseconds=i)
        common = dict(tenant=tenant, job_id=job_id, attempt=0, occurred_at=at)
        seq += 1
        state.apply(seq, ev.JobSubmitted(event_id=f"s{i}", spec=spec, **common))
        seq += 1
        state.apply(seq, ev.JobQueued(event_id=f"q{i}", pool="nowhere", position=1, **common))
    return state


def timed(fn: Callable[[], object], runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        began = time.process_time()
        fn()
        samples.append((time.process_time() - began) * 1000)
    return {"p50_ms": round(statistics.median(samples), 3), "max_ms": round(max(samples), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--tag", default="now")
    args = parser.parse_args()
    beats = [WorkerHeartbeat(workloads=["process"], worker_id=f"w{i}", pool="default", slots=100, free_slots=100,
                             cpu_millis=4000, memory_mib=8192, gpu=0, draining=False) for i in range(2)]
    pools = placement.pools_from(beats)
    rules = SchedulerSettings()
    now = T0 + timedelta(minutes=5)
    result: dict[str, object] = {}
    for queued in args.queued:
        state = backlog(queued)
        inputs = Round(dirty=set(), sweep=False, settled=True, drain_rate_per_s=0.0, rereleased={}, basis=0)

        def planned(state: SchedulerState = state) -> object:
            return fairness.plan(state, pools, now)

        def round_(state: SchedulerState = state, inputs: Round = inputs) -> object:
            return reconcile(state, beats, now, rules, inputs, lambda: "id")

        result[str(queued)] = {"plan": timed(planned, args.runs), "reconcile_round": timed(round_, args.runs)}
    result |= {"tag": args.tag, "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "machine": f"{os.cpu_count()} cores", "load_avg_1m": os.getloadavg()[0]}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"fair-plan-{args.tag}.json"), "w") as out:
        out.write(json.dumps(result, indent=2) + "\n")
    with open(os.path.join(RESULTS, "SUMMARY.md"), "a") as out:
        out.write(f"- `fair-plan-{args.tag}`: {msgspec.json.encode(result).decode()}\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
