"""The "525 ms submit after an idle pause", at its root: how long a message published after an idle pause takes to
reach a consumer that follows the log the way the projector does (a pull consumer, batches of 256, 1 s waits), with
nats-py's `fetch` and with `servicekit.pull`. Writes bench/results/pull-idle.json.

    .venv/bin/python bench/pull_idle.py --rounds 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from xrunner.cli import embedded
from xrunner.cli.bench import percentiles
from xrunner.servicekit.pull import pull

RESULTS = Path(__file__).parent / "results"
Puller = Callable[[JetStreamContext.PullSubscription], Awaitable[list[Msg]]]


async def fetch(sub: JetStreamContext.PullSubscription) -> list[Msg]:
    try:
        return await sub.fetch(256, timeout=1.0)
    except TimeoutError:
        return []


async def ours(sub: JetStreamContext.PullSubscription) -> list[Msg]:
    return await pull(sub, 256, 1.0)


async def measure(url: str, stream: str, puller: Puller, rounds: int) -> dict[str, object]:
    """Per round: stay idle 1.0 to 1.5 s (spread over the pull's expiry), then publish 5 messages one after another,
    each once the previous one arrived; the time from publish to arrival."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"]))
    info = await js.add_consumer(stream, ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE,
                                                        mem_storage=True, inactive_threshold=30.0))
    assert info.name is not None
    sub = await js.pull_subscribe_bind(info.name, stream=stream)
    arrived: dict[int, float] = {}

    async def follow() -> None:
        while True:
            for msg in await puller(sub):
                arrived[int(msg.data)] = time.perf_counter()

    task = asyncio.create_task(follow())
    latencies: list[float] = []
    for r in range(rounds):
        await asyncio.sleep(1.0 + (r % 10) * 0.05)  # the idle pause under test
        for i in range(5):
            key, sent = r * 10 + i, time.perf_counter()
            await js.publish(f"{stream}.x", str(key).encode())
            while key not in arrived:
                await asyncio.sleep(0.0005)
            latencies.append((arrived[key] - sent) * 1000)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await nc.close()
    return {"messages": len(latencies), "ms": percentiles(latencies), "over_100ms": sum(x > 100 for x in latencies)}


async def main(rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        port = embedded.free_port()
        proc = embedded.start_nats(Path(tmp) / "store", port, log_file=Path(tmp) / "nats.log")
        try:
            url = f"nats://127.0.0.1:{port}"
            return {"nats_py_fetch": await measure(url, "FETCH", fetch, rounds),
                    "servicekit_pull": await measure(url, "PULL", ours, rounds)}
        finally:
            embedded.stop(proc)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    load = os.getloadavg()
    result = asyncio.run(main(args.rounds)) | {"rounds": args.rounds, "load_average_before": load,
                                               "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pull-idle.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
