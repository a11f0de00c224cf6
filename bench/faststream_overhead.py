"""What a FastStream subscriber costs per message against the hand-written consumer the services use, on the same
work: a durable JetStream pull consumer with explicit acks (the workers' run queue shape), batches of 256, each
message decoded as an event with msgspec and acked. N messages are stored first; then one consumer takes them all
(also nats-py's plain `fetch`, which FastStream uses), and the client process's CPU time and the wall time are
measured until the last one is handled. Runs alternate. Writes bench/results/faststream-overhead.json (summarised in
docs/benchmarks.md, decided on in docs/decisions.md).

    .venv/bin/python bench/faststream_overhead.py --messages 20000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path

import nats
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, StreamConfig

from xrunner.cli import embedded
from xrunner.contracts import codec
from xrunner.servicekit.pull import pull

RESULTS = Path(__file__).parent / "results"
SAMPLE = (Path(__file__).parents[1] / "tests" / "golden" / "events" / "job.queued.v1.json").read_bytes()
BATCH = 256
Consume = Callable[[str, str, int], Awaitable[None]]


async def fill(url: str, stream: str, count: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.run"]))
    pending = [js.publish(f"{stream}.run", SAMPLE) for _ in range(count)]
    for start in range(0, count, 1000):
        await asyncio.gather(*pending[start:start + 1000])
    await nc.close()


async def hand_written(url: str, stream: str, count: int) -> None:
    """The services' way: servicekit.pull, msgspec decode, ack each."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_consumer(stream, ConsumerConfig(durable_name="bench", ack_policy=JsAckPolicy.EXPLICIT,
                                                 max_ack_pending=10 * BATCH))
    sub = await js.pull_subscribe_bind(durable="bench", stream=stream)
    done = 0
    while done < count:
        for msg in await pull(sub, BATCH, 1.0):
            codec.decode_event(msg.data)
            await msg.ack()
            done += 1
    await nc.close()


async def nats_py_fetch(url: str, stream: str, count: int) -> None:
    """What FastStream calls underneath: nats-py's `fetch`, msgspec decode, ack each (no framework around it)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_consumer(stream, ConsumerConfig(durable_name="bench", ack_policy=JsAckPolicy.EXPLICIT,
                                                 max_ack_pending=10 * BATCH))
    sub = await js.pull_subscribe_bind(durable="bench", stream=stream)
    done = 0
    while done < count:
        try:
            msgs = await sub.fetch(BATCH, timeout=1.0)
        except TimeoutError:
            continue
        for msg in msgs:
            codec.decode_event(msg.data)
            await msg.ack()
            done += 1
    await nc.close()


async def faststream(url: str, stream: str, count: int) -> None:
    """The same through a FastStream pull subscriber (acks after the handler returns)."""
    broker = NatsBroker(url, logger=None)  # no per-message log lines (the services log none either)
    finished = asyncio.Event()
    handled = 0

    @broker.subscriber(f"{stream}.run", stream=JStream(stream, declare=False), durable="bench",
                       pull_sub=PullSub(batch_size=BATCH, timeout=1.0), ack_policy=AckPolicy.ACK)
    async def handle(message: NatsMessage) -> None:  # the raw message: no JSON body parsing or pydantic model
        nonlocal handled
        codec.decode_event(message.body)
        handled += 1
        if handled == count:
            finished.set()

    await broker.start()
    await finished.wait()
    await broker.stop()


async def measure(url: str, name: str, consume: Consume, run: int, count: int) -> dict[str, float]:
    stream = f"B{name.upper().replace('-', '')}{run}"
    await fill(url, stream, count)
    cpu, wall = time.process_time(), time.perf_counter()
    await consume(url, stream, count)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us_per_msg": cpu / count * 1e6, "wall_us_per_msg": wall / count * 1e6}


async def main(count: int, runs: int) -> dict[str, object]:
    ways: dict[str, Consume] = {"hand-written": hand_written, "nats-py-fetch": nats_py_fetch, "faststream": faststream}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in ways}
    with tempfile.TemporaryDirectory() as tmp:
        port = embedded.free_port()
        proc = embedded.start_nats(Path(tmp) / "store", port, log_file=Path(tmp) / "nats.log")
        try:
            url = f"nats://127.0.0.1:{port}"
            for run in range(runs):
                for name, consume in ways.items():
                    samples[name].append(await measure(url, name, consume, run, count))
        finally:
            embedded.stop(proc)
    summary = {name: {key: round(statistics.median(s[key] for s in runs_), 2) for key in runs_[0]}
               for name, runs_ in samples.items()}
    overhead = round(summary["faststream"]["cpu_us_per_msg"] - summary["hand-written"]["cpu_us_per_msg"], 2)
    return {"messages": count, "runs": runs, "batch": BATCH, "faststream": version("faststream"),
            "nats-py": version("nats-py"), "median": summary, "faststream_cpu_overhead_us_per_msg": overhead,
            "samples": samples}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    result = asyncio.run(main(args.messages, args.runs))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "faststream-overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
