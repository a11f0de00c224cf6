"""The side-by-side benchmark: the same four workloads, from one client process, against xrunner (unsandboxed and
in bubblewrap, each a private embedded stack), SAQ + Redis, Celery + Redis and a no-system baseline; the median of
each number over the repetitions goes to bench/results/peers-<time>.{json,md,png}.

    .venv/bin/python bench/peers/run.py                                  # everything: 5 systems x 4 workloads x 3
    .venv/bin/python bench/peers/run.py --quick                          # the smoke: 10 jobs per workload, 1 rep
    .venv/bin/python bench/peers/run.py --systems xrunner-none saq --workloads W1 W5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import report
from baseline import Baseline
from redis_queues import CeleryQueue, Saq
from workloads import System, run, warm_up, workloads
from xrunner_system import Xrunner

SYSTEMS = ("xrunner-none", "xrunner-bwrap", "saq", "celery", "baseline")
RESULTS = Path(__file__).resolve().parent.parent / "results"


def make(name: str, args: argparse.Namespace) -> System:
    if name.startswith("xrunner-"):
        return Xrunner(name.removeprefix("xrunner-"), args.slots, shlex.split(args.xrunner_args))
    return {"saq": Saq, "celery": CeleryQueue, "baseline": Baseline}[name](args.slots)


async def bench(system: System, args: argparse.Namespace) -> dict[str, Any]:
    """Start the system, warm it up, run each workload `reps` times, stop it."""
    chosen = workloads(args.quick)
    timeout = 60.0 if args.quick else args.timeout
    await system.start()
    try:
        await warm_up(system)
        out: dict[str, Any] = {}
        for key in args.workloads:
            runs = [await run(system, chosen[key], args.in_flight, timeout) for _ in range(args.reps)]
            out[key] = {"median": report.median_of(runs), "reps": runs}
            print(f"{system.name} {key}: {report.cell(key, out[key]['median'])}, lost {out[key]['median']['lost']}",
                  file=sys.stderr, flush=True)
        if isinstance(system, Xrunner):
            out["throttled_submits"] = system.throttled  # type: ignore[assignment]
            out["resent_submits"] = system.resent  # type: ignore[assignment]
        return out
    finally:
        await system.stop()


def environment() -> dict[str, Any]:
    versions = {name: _version(name) for name in ("saq", "celery", "redis", "httpx")}
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False).stdout
    return {"python": sys.version.split()[0], "packages": versions, "redis_server": redis.strip() or None,
            "load_average_at_start": os.getloadavg()}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


async def main(args: argparse.Namespace) -> dict[str, Any]:
    chosen = workloads(args.quick)
    results: dict[str, Any] = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": f"{os.cpu_count()} cores",
        "quick": args.quick, "reps": args.reps, "slots": args.slots, "in_flight": args.in_flight,
        "xrunner_args": args.xrunner_args, "environment": environment(),
        "workloads": {k: {"title": w.title, "jobs": w.jobs, "argv": list(w.argv)} for k, w in chosen.items()
                      if k in args.workloads},
        "systems": {},
    }
    for name in args.systems:
        measured = await bench(make(name, args), args)
        for counter in ("throttled_submits", "resent_submits"):
            count = measured.pop(counter, None)
            if count is not None:
                results.setdefault(counter, {})[name] = count
        results["systems"][name] = measured
    return results


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the smoke: 10 jobs per workload, 1 repetition")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--workloads", nargs="+", choices=("W1", "W3", "W4", "W5"), default=["W1", "W3", "W4", "W5"])
    parser.add_argument("--reps", type=int, help="repetitions (default 3, 1 with --quick)")
    parser.add_argument("--slots", type=int, default=100, help="concurrent jobs of every system")
    parser.add_argument("--in-flight", type=int, default=100, help="concurrent submit requests of the client")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a workload's jobs may take to end")
    parser.add_argument("--xrunner-args", default="", help="more `xrunner up` options, e.g. '--workers 4'")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the result files go")
    args = parser.parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 3)
    return args


if __name__ == "__main__":
    arguments = parse()
    outcome = asyncio.run(main(arguments))
    stem = time.strftime("peers-%Y%m%d-%H%M%S", time.gmtime()) + ("-quick" if arguments.quick else "")
    for path in report.write(outcome, arguments.out, stem):
        print(path)
