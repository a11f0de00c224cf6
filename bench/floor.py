"""The floor of xrunner's shape on this machine: the same chain of stored facts a job goes through, with nothing
else. What W1 and W5 (bench/peers/) could at best be in this shape, so the closing notes can tell a target that
needs faster code from one the shape itself rules out.

Three Python processes on nats-py (uvloop but for the worker, as in xrunner), talking only through one
nats-server's JetStream as xrunner's services do: the client appends `submitted` (the gateway's append, without
HTTP), a "scheduler" appends `queued` then `dispatched` (each compare-and-set on the job's history, as the event
store does) and puts the work item on a work-queue stream, a "worker" pulls it, appends `started` (compare-and-set on
the dispatch: the fence), runs the job as an asyncio subprocess (`--sandbox bwrap`: in a bare bubblewrap) and appends
`succeeded`; the client learns of the end from a push consumer on the outcomes (the realtime edge's push). Six
stored facts per job, xrunner's seven minus the log's end. No Postgres, no projections, no HTTP, no logs, no
cgroups, no decisions: anything xrunner does on top costs more than this.

    .venv/bin/python bench/floor.py --w1 300 --w5 3000 [--sandbox bwrap]

Writes bench/results/floor-<sandbox>.json: W1 p50 / p99 (submit → the client hears of the end, one `true` at a time) and
W5 (3,000 `true`, 64 in flight): jobs/s and CPU per job of every process (nats-server, scheduler, worker with its
jobs, client).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
import uvloop
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig

from xrunner.cli.embedded import nats_server_path
from xrunner.servicekit.pull import pull

RESULTS = Path(__file__).parent / "results"
EVENTS, RUN = "FL_EVENTS", "FL_RUN"
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def cas(job: str, expect: int) -> dict[str, str]:
    """The event store's compare-and-set headers: only if the job's last event is at `expect`."""
    return {"Nats-Expected-Last-Subject-Sequence": str(expect),
            "Nats-Expected-Last-Subject-Sequence-Subject": f"fl.evt.{job}.*"}


async def scheduler(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()

    async def on_submitted(msg: nats.aio.msg.Msg) -> None:
        job = msg.subject.split(".")[2]
        seq = msg.metadata.sequence.stream
        queued = await js.publish(f"fl.evt.{job}.queued", b'{"type":"job.queued.v1","pool":"default"}',
                                  headers={"Nats-Msg-Id": f"{job}:q", **cas(job, seq)})
        dispatched = await js.publish(f"fl.evt.{job}.dispatched", b'{"type":"job.dispatched.v1","attempt":1}',
                                      headers={"Nats-Msg-Id": f"{job}:d", **cas(job, queued.seq)})
        await js.publish("fl.run.default", json.dumps({"job": job, "fence": dispatched.seq}).encode(),
                         headers={"Nats-Msg-Id": f"run:{job}"})

    tasks: set[asyncio.Future[None]] = set()

    async def feed(msg: nats.aio.msg.Msg) -> None:  # decisions for different jobs run concurrently, as in the loop
        task = asyncio.ensure_future(on_submitted(msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await js.subscribe("fl.evt.*.submitted", cb=feed, manual_ack=False,
                       config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.NEW))
    await asyncio.Event().wait()


# A sandbox as bare as xrunner's can be (its own adds /etc binds, a workspace, limits): every namespace, a read-only
# /usr, /proc, /dev, a /tmp.
BWRAP = ["bwrap", "--die-with-parent", "--new-session", "--unshare-all", "--ro-bind", "/usr", "/usr",
         "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
         "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--"]


async def worker(url: str, slots: int, sandbox: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe("fl.run.default", "worker", stream=RUN)
    free = asyncio.Semaphore(slots)
    tasks: set[asyncio.Future[None]] = set()

    async def run(msg: nats.aio.msg.Msg) -> None:
        try:
            item = json.loads(msg.data)
            job = item["job"]
            started = await js.publish(f"fl.evt.{job}.started", b'{"type":"job.started.v1","attempt":1}',
                                       headers={"Nats-Msg-Id": f"{job}:s", **cas(job, item["fence"])})
            await msg.ack()
            argv = [*BWRAP, "true"] if sandbox == "bwrap" else ["true"]
            proc = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                        stderr=subprocess.PIPE, start_new_session=True)
            await proc.communicate()
            await js.publish(f"fl.evt.{job}.succeeded", b'{"type":"job.succeeded.v1","exit_code":0}',
                             headers={"Nats-Msg-Id": f"{job}:ok", **cas(job, started.seq)})
        finally:
            free.release()

    while True:
        await free.acquire()
        free.release()
        want = max(1, free._value)  # as the worker does: no more than its free slots
        try:
            msgs = await pull(sub, want, 1.0)  # xrunner's own pull (servicekit/pull.py)
        except TimeoutError:
            continue
        for msg in msgs:
            await free.acquire()
            task = asyncio.ensure_future(run(msg))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


class Client:
    def __init__(self, url: str) -> None:
        self.url = url
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.count = 0

    async def start(self) -> None:
        self.nc = await nats.connect(self.url)
        self.js = self.nc.jetstream()

        async def on_end(msg: nats.aio.msg.Msg) -> None:
            future = self.waiting.pop(msg.subject.split(".")[2], None)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())

        await self.js.subscribe("fl.evt.*.succeeded", cb=on_end, manual_ack=False,
                                config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.NEW))

    async def submit(self) -> asyncio.Future[float]:
        self.count += 1
        job = f"j{os.getpid()}x{self.count}"
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[job] = future
        await self.js.publish(f"fl.evt.{job}.submitted", b'{"type":"job.submitted.v1","spec":{"argv":["true"]}}',
                              headers={"Nats-Msg-Id": f"submit:{job}", **cas(job, 0)})
        return future


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of these processes and their reaped children (a job's `true` is reaped by the worker)."""
    total = 0
    for pid in pids:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2:].split()
        total += sum(int(f) for f in fields[11:15])
    return total


async def measure(url: str, roles: dict[str, int], w1: int, w5: int, inflight: int) -> dict[str, object]:
    client = Client(url)
    await client.start()
    for _ in range(50):  # warm up
        await (await client.submit())
    latencies = []
    for _ in range(w1):
        sent = time.perf_counter()
        ended = await (await client.submit())
        latencies.append((ended - sent) * 1000)
    gate = asyncio.Semaphore(inflight)

    async def one() -> None:
        async with gate:
            await (await client.submit())

    pids = {**roles, "client": os.getpid()}
    before = {name: cpu_ticks([pid]) for name, pid in pids.items()}
    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(w5)))
    wall = time.perf_counter() - began
    after = {name: cpu_ticks([pid]) for name, pid in pids.items()}
    per_job = {name: round((after[name] - before[name]) * TICK_MS / w5, 2) for name in pids}
    system = round(sum(v for k, v in per_job.items() if k != "client"), 2)
    latencies.sort()
    return {
        "w1_jobs": w1,
        "w1_p50_ms": round(statistics.median(latencies), 2),
        "w1_p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
        "w5_jobs": w5,
        "w5_inflight": inflight,
        "w5_jobs_per_s": round(w5 / wall, 1),
        "w5_cpu_ms_per_job": per_job,
        "w5_cpu_ms_per_job_system": system,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", nargs="?", default="run", choices=["run", "scheduler", "worker"])
    parser.add_argument("--url", default="")
    parser.add_argument("--w1", type=int, default=300)
    parser.add_argument("--w5", type=int, default=3000)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--slots", type=int, default=100)
    parser.add_argument("--sandbox", default="none", choices=["none", "bwrap"])
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    if args.role == "scheduler":
        uvloop.run(scheduler(args.url))
        return
    if args.role == "worker":  # asyncio's own loop, as xrunner's worker: it spawns with vfork, uvloop forks
        asyncio.run(worker(args.url, args.slots, args.sandbox))
        return
    store = Path(tempfile.mkdtemp(prefix="xr-floor-"))
    port = 21_000 + os.getpid() % 5000
    url = f"nats://127.0.0.1:{port}"
    server = subprocess.Popen([str(nats_server_path()), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    roles: dict[str, subprocess.Popen[bytes]] = {}
    try:
        uvloop.run(_declare(url))
        for role in ("scheduler", "worker"):
            roles[role] = subprocess.Popen([sys.executable, __file__, role, "--url", url, "--slots", str(args.slots),
                                            "--sandbox", args.sandbox])
        time.sleep(1.0)  # their consumers exist
        pids = {"nats-server": server.pid, **{name: p.pid for name, p in roles.items()}}
        result = uvloop.run(measure(url, pids, args.w1, args.w5, args.inflight))
    finally:
        for proc in [*roles.values(), server]:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    result |= {"sandbox": args.sandbox, "load_after": [round(x, 2) for x in os.getloadavg()],
               "machine": f"{os.cpu_count()} cores", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = RESULTS / f"floor-{args.sandbox}{'-' + args.label if args.label else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


async def _quiet(exc: Exception) -> None:
    pass


async def _declare(url: str) -> None:
    for _ in range(100):
        try:
            nc = await nats.connect(url, max_reconnect_attempts=0, error_cb=_quiet)
            break
        except Exception:  # not listening yet
            await asyncio.sleep(0.05)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=EVENTS, subjects=["fl.evt.>"], retention=RetentionPolicy.LIMITS,
                                     storage=StorageType.FILE, duplicate_window=120.0, allow_direct=True))
    await js.add_stream(StreamConfig(name=RUN, subjects=["fl.run.>"], retention=RetentionPolicy.WORK_QUEUE,
                                     storage=StorageType.FILE, duplicate_window=120.0))
    await nc.close()


if __name__ == "__main__":
    main()
