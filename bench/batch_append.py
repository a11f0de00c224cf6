"""An atomic batch against an acked append each: how long N new jobs' `job.submitted` take to be stored, each
compare-and-set at 0 on its own job and deduplicated by its message id (what `POST /v1/jobs/batch` appends), on a
private nats-server. Chooses where the gateway starts appending a batch atomically (`batch.ATOMIC_FROM`).

    .venv/bin/python bench/batch_append.py

Medians of 7 (3 for 1,000) to bench/results/batch-append.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime

import nats
from nats.js.api import StorageType, StreamConfig
from run import RESULTS

from xrunner.cli.embedded import nats_server_path
from xrunner.contracts.events import JobSubmitted
from xrunner.contracts.spec import JobSpec, ProcessWorkload
from xrunner.contracts.subjects import EVENTS_ALL, EVENTS_STREAM
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id

SIZES = (1, 5, 20, 50, 100, 200, 1000)
SPEC = JobSpec(workload=ProcessWorkload(argv=["true"]))


def submissions(n: int) -> list[tuple[JobSubmitted, str, int]]:
    now = datetime.now(UTC)
    events = [JobSubmitted(event_id=new_id(), occurred_at=now, tenant="bench", job_id=new_id(), spec=SPEC)
              for _ in range(n)]
    return [(e, f"submit:bench:{e.job_id}", 0) for e in events]


async def measure(url: str) -> dict[str, dict[str, float]]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=EVENTS_STREAM, subjects=[EVENTS_ALL], storage=StorageType.FILE,
                                     allow_atomic=True, allow_direct=True, duplicate_window=120.0))
    store = EventStore(js)
    out = {}
    for n in SIZES:
        atomic, each = [], []
        for _ in range(3 if n >= 1000 else 7):
            items = submissions(n)
            began = time.perf_counter()
            assert await store.append_atomic(items) is not None
            atomic.append((time.perf_counter() - began) * 1000)
            items = submissions(n)
            began = time.perf_counter()
            await asyncio.gather(*(store.append(e, msg_id=m, expect=x) for e, m, x in items))
            each.append((time.perf_counter() - began) * 1000)
        out[str(n)] = {"atomic_ms": round(statistics.median(atomic), 2),
                       "acked_each_ms": round(statistics.median(each), 2)}
        print(f"{n:5d}  atomic {out[str(n)]['atomic_ms']:7.2f} ms   acked each {out[str(n)]['acked_each_ms']:7.2f} ms")
    await nc.close()
    return out


def main() -> None:
    port = 23_000 + os.getpid() % 2000
    server = subprocess.Popen([str(nats_server_path()), "-js", "-sd", tempfile.mkdtemp(prefix="xr-batch-"), "-a",
                               "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        result = asyncio.run(measure(f"nats://127.0.0.1:{port}"))
    finally:
        server.terminate()
        server.wait(10)
    record = {"sizes": result, "load": [round(x, 2) for x in os.getloadavg()], "machine": f"{os.cpu_count()} cores",
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (RESULTS / "batch-append.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
