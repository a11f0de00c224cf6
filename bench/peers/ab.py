"""W1 as an A/B test: two private `xrunner up` stacks that differ only in some options, one `true` at a time on
each in turn (A, B, A, B, ...), completion by push, as the peers harness drives xrunner. Runs minutes apart on this
machine differ by more than most changes do (the same code measured W1 p50 anywhere from 10 to 18 ms within an
hour); interleaving job by job puts both sides under the same conditions.

    .venv/bin/python bench/peers/ab.py --a '--warm-shells 0' --b '--warm-shells 8' --jobs 400 --label warm-shells

Medians and percentiles of each side to bench/results/w1-ab-<label>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import time
from pathlib import Path

from xrunner_system import Xrunner

RESULTS = Path(__file__).resolve().parents[1] / "results"
WARMUP = 10


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"p50": round(statistics.median(ordered), 2), "p90": round(ordered[int(len(ordered) * 0.9)], 2),
            "p99": round(ordered[int(len(ordered) * 0.99)], 2), "mean": round(statistics.mean(ordered), 2)}


async def measure(sides: dict[str, Xrunner], jobs: int) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(jobs + WARMUP):
        for name, system in sides.items():
            began = time.perf_counter()
            end = await (await system.submit(["true"]))
            if not end.ok:
                raise RuntimeError(f"a job failed on side {name}")
            if i >= WARMUP:
                latencies[name].append((end.at - began) * 1000)
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--a", default="", help="`xrunner up` options of side A")
    parser.add_argument("--b", default="", help="`xrunner up` options of side B")
    parser.add_argument("--sandbox", default="none", choices=["none", "bwrap"])
    parser.add_argument("--jobs", type=int, default=400, help="jobs per side")
    parser.add_argument("--label", default="run")
    args = parser.parse_args()
    options = {"A": shlex.split(args.a), "B": shlex.split(args.b)}
    sides: dict[str, Xrunner] = {}
    load = os.getloadavg()
    try:
        for name, extra in options.items():
            sides[name] = Xrunner(args.sandbox, 100, extra)
            await sides[name].start()
        latencies = await measure(sides, args.jobs)
    finally:
        for system in sides.values():
            await system.stop()
    sides_out = {name: {"options": args.a if name == "A" else args.b, "ms": summary(latencies[name])}
                 for name in sides}
    result = {"workload": "W1 interleaved", "sandbox": args.sandbox, "jobs_per_side": args.jobs,
              "load_average_before": load, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "sides": sides_out}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"w1-ab-{args.label}.json").write_text(json.dumps(result, indent=2) + "\n")
    for name, side in sides_out.items():
        print(f"{name} {side['options']!r}: {side['ms']}")


if __name__ == "__main__":
    asyncio.run(main())
