"""Where one job's time goes: submits `true` one at a time to a private embedded stack, waits for each to end
(polling `GET /v1/jobs/ID` every 25 ms: a faster poll takes the gateway's CPU from the job it watches) and takes
each hop from the job's own events (`occurred_at`, the services' clocks on this one host). Medians and maxima per
hop to bench/results/timeline-<sandbox>-<label>.json.

    .venv/bin/python bench/timeline.py --jobs 100 --sandbox none --label after
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import datetime

import httpx
from run import RESULTS, Stack

WARMUP = 5


async def measure(stack: Stack, jobs: int) -> dict[str, list[float]]:
    hops: dict[str, list[float]] = {}
    headers = {"Authorization": f"Bearer {stack.token('acme')}"}
    async with httpx.AsyncClient(base_url=stack.api, headers=headers) as client:
        for i in range(jobs + WARMUP):
            posted = time.time()
            response = await client.post("/v1/jobs", json={"workload": {"kind": "process", "argv": ["true"]}})
            answered = time.time()
            job_id = response.json()["job"]["id"]
            while (await client.get(f"/v1/jobs/{job_id}")).json()["state"] not in ("succeeded", "failed"):
                await asyncio.sleep(0.025)
            history = (await client.get(f"/v1/jobs/{job_id}/events")).json()
            if i < WARMUP:
                continue
            before, name = posted, "POST sent"
            for entry in history:
                at = datetime.fromisoformat(entry["event"]["occurred_at"]).timestamp()
                kind = entry["type"].removesuffix(".v1")
                hops.setdefault(f"{name} → {kind}", []).append((at - before) * 1000)
                before, name = at, kind
            hops.setdefault("POST answered (from POST sent)", []).append((answered - posted) * 1000)
            hops.setdefault("total (POST sent → the end's occurred_at)", []).append((before - posted) * 1000)
    return hops


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--sandbox", default="none", choices=["none", "bwrap"])
    parser.add_argument("--label", default="run")
    parser.add_argument("--slots", type=int, default=None, help="per worker process (`xrunner up`'s default)")
    args = parser.parse_args()
    load = os.getloadavg()
    stack = Stack(slots=args.slots, sync_always=False, sandbox=args.sandbox)
    try:
        hops = asyncio.run(measure(stack, args.jobs))
    finally:
        stack.stop()
    result = {
        "jobs": args.jobs, "sandbox": args.sandbox, "load_average_before": load, "load_average_after": os.getloadavg(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hops_ms": {hop: {"p50": round(statistics.median(v), 2), "max": round(max(v), 2)} for hop, v in hops.items()},
    }
    out = RESULTS / f"timeline-{args.sandbox}-{args.label}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for hop, v in result["hops_ms"].items():
        print(f"{v['p50']:8.2f} ms p50 {v['max']:8.2f} max  {hop}")


if __name__ == "__main__":
    main()
