"""The scheduler's replay alone: a generated history of `--decisions` dispatches (the unit tests' simulator,
`tests/unit/simulate.py`, driving the real reconcile: five tenants with different weights, three pools, jobs that
run for a few rounds), encoded as the log stores it; then the time to decode it and replay every recorded round
(`replay.verify`), and the what-if model with one override. Writes bench/results/scheduler-replay.json.

    .venv/bin/python bench/scheduler_replay.py --decisions 100000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from simulate import WIDE_OPEN, Sim, pool, spec  # noqa: E402

from xrunner.contracts import codec  # noqa: E402
from xrunner.contracts import events as ev  # noqa: E402
from xrunner.contracts.spec import JobSpec  # noqa: E402
from xrunner.scheduler.replay import verify  # noqa: E402
from xrunner.scheduler.whatif import parse_overrides, record, what_if  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BACKLOG = 300  # jobs queued at most (submissions pause above it), as a busy but keeping-up cluster has
TENANTS = {"t0": 1.0, "t1": 1.0, "t2": 2.0, "t3": 4.0, "t4": 0.5}
POOLS = {"default": pool(slots=48, workers=4), "gpu": pool("gpu", gpu=2, slots=8, workers=2),
         "highmem": pool("highmem", memory=65536, slots=8, workers=2)}


def job(rng: random.Random) -> JobSpec:
    """Mostly small jobs, some for the GPU pool, some for the high-memory one; every one fits some pool."""
    roll = rng.random()
    gpu, memory = (1, 1024) if roll < 0.1 else (0, 16384) if roll < 0.2 else (0, rng.choice((256, 1024)))
    return spec(rng.choice((250, 1000, 2000)), memory, gpu, priority=rng.randint(-1, 1))


def generate(decisions: int, seed: int) -> list[bytes]:
    """A history with at least `decisions` dispatches, encoded event by event."""
    rng = random.Random(seed)
    sim = Sim()
    for tenant, weight in TENANTS.items():
        sim.configure(tenant, weight=weight, max_inflight=40)
    dispatched = 0
    while dispatched < decisions:
        backlog = len(sim.jobs(states=("queued",)))
        for _ in range(rng.randint(10, 40) if backlog < BACKLOG else 0):
            sim.submit(rng.choice(list(TENANTS)), job=job(rng))
        dispatched += len(sim.dispatch(sim.plan(POOLS).picks))
        running = sim.jobs(states=("dispatched",))
        sim.start([(v.tenant, v.id) for v in running])
        sim.finish([(v.tenant, v.id) for v in sim.jobs(states=("running",)) if rng.random() < 0.4])
        sim.tick(rng.choice((0.25, 0.5, 1.0)))
    return [codec.encode(event) for _, event in sim.log]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    encoded = generate(args.decisions, args.seed)
    generated_s = time.perf_counter() - started

    started, cpu = time.perf_counter(), time.process_time()
    log = [(seq, codec.decode_event(data)) for seq, data in enumerate(encoded, 1)]
    decoded_s, decoded_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    result = verify(log, WIDE_OPEN)
    verified_s, verified_cpu = time.perf_counter() - started, time.process_time() - cpu
    assert result.equal, result.differences[:3]

    started, cpu = time.perf_counter(), time.process_time()
    outcome = what_if(record(log), WIDE_OPEN, parse_overrides(["tenant.t4.weight=4"]))
    what_if_s, what_if_cpu = time.perf_counter() - started, time.process_time() - cpu

    summary = {
        "events": len(log),
        "decisions": result.decisions,
        "rounds": result.rounds,
        "generate_s": round(generated_s, 2),
        "decode_s": round(decoded_s, 3),
        "replay_s": round(verified_s, 3),
        "decode_and_replay_s": round(decoded_s + verified_s, 3),
        "decode_cpu_s": round(decoded_cpu, 3),
        "replay_cpu_s": round(verified_cpu, 3),
        "decode_and_replay_cpu_s": round(decoded_cpu + verified_cpu, 3),
        "decisions_per_s": round(result.decisions / (decoded_s + verified_s)),
        "backlog_max": BACKLOG,
        "load_average": os.getloadavg()[0],
        "what_if_s": round(what_if_s, 3),
        "what_if_cpu_s": round(what_if_cpu, 3),
        "what_if": {"override": "tenant.t4.weight=4", "earlier": outcome.earlier, "later": outcome.later,
                    "by_tenant_s": {t: round(d, 3) for t, d in outcome.by_tenant.items()},
                    "model_matches": outcome.model_matches, "recorded": outcome.recorded},
        "dispatch_event_bytes_mean": round(sum(len(b) for b, (_, e) in zip(encoded, log, strict=True)
                                               if isinstance(e, ev.JobDispatched)) / max(1, result.decisions)),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scheduler-replay.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
