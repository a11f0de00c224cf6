"""Would an atomic JetStream batch make the scheduler's `job.queued` + `job.dispatched` one round trip instead of two?
Against a private nats-server (the embedded one): what such a batch does with the compare-and-set and message-id
headers the event store relies on, and how long one batch of two takes next to two acked publishes one after the
other (the scheduler's way now).

    .venv/bin/python bench/atomic_batch.py --rounds 300       # bench/results/atomic-batch.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js.api import StreamConfig

from xrunner.cli import embedded

RESULTS = Path(__file__).parent / "results"
HISTORY = "ev.job1.*"


async def batch(nc: Client, messages: list[tuple[str, bytes, str | None]], expect: int | None) -> dict[str, Any]:
    """Publish `messages` as one atomic batch (the first with `expect` as the job's compare-and-set); the commit's
    answer."""
    batch_id = uuid.uuid4().hex
    for i, (subject, data, msg_id) in enumerate(messages, 1):
        headers = {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(i)}
        if msg_id:
            headers["Nats-Msg-Id"] = msg_id
        if i == 1 and expect is not None:
            headers |= {"Nats-Expected-Last-Subject-Sequence": str(expect),
                        "Nats-Expected-Last-Subject-Sequence-Subject": HISTORY}
        if i < len(messages):
            await nc.publish(subject, data, headers=headers)
            continue
        headers["Nats-Batch-Commit"] = "1"
        answer: dict[str, Any] = json.loads((await nc.request(subject, data, headers=headers, timeout=5)).data)
        return answer
    raise ValueError("an empty batch")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="xr-atomic-"))
    server = embedded.start_nats(base / "nats", port := embedded.free_port())
    try:
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="EV", subjects=["ev.>"], allow_atomic=True, duplicate_window=120))
        await js.publish("ev.job1.submitted", b"s", headers={"Nats-Msg-Id": "job1:submitted"})
        pair: list[tuple[str, bytes, str | None]] = [("ev.job1.queued", b"q", "job1:queued"),
                                                     ("ev.job1.dispatched", b"d", "job1:dispatched")]
        semantics = {
            "compare-and-set and message ids, first try": await batch(nc, pair, expect=1),
            "the same batch again (a retry after a lost ack)": await batch(nc, pair, expect=1),
            "the same message ids with the current sequence": await batch(nc, pair, expect=3),
            "no message ids, a stale sequence": await batch(nc, [(s, d, None) for s, d, _ in pair], expect=1),
        }
        sequential, batched, single = [], [], []
        for i in range(args.rounds):
            began = time.perf_counter()
            await js.publish(f"ev.s{i}.queued", b"q")
            await js.publish(f"ev.s{i}.dispatched", b"d")
            sequential.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            await batch(nc, [(f"ev.b{i}.queued", b"q", None), (f"ev.b{i}.dispatched", b"d", None)], expect=None)
            batched.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            await batch(nc, [(f"ev.c{i}.queued", b"q", None)], expect=None)
            single.append((time.perf_counter() - began) * 1000)
        await nc.close()
    finally:
        embedded.stop(server)
    result = {"nats_server": "embedded", "rounds": args.rounds, "semantics": semantics,
              "two_acked_publishes_ms_p50": round(statistics.median(sequential), 3),
              "one_atomic_batch_of_two_ms_p50": round(statistics.median(batched), 3),
              "one_atomic_batch_of_one_ms_p50": round(statistics.median(single), 3),
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "atomic-batch.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
