"""The realtime edge's benchmark: how late job events reach 100 and 1,000 concurrent SSE clients of one realtime
process while jobs run, and that process's memory with 5,000 idle SSE connections. Starts a private embedded stack
like bench/run.py; writes bench/results/realtime-<clients>-idle<n>-rate<r>.json and a line in bench/results/SUMMARY.md.

    .venv/bin/python bench/realtime.py                                   # 100 and 1,000 clients, 5,000 idle
    .venv/bin/python bench/realtime.py --clients 1000 --idle 0 --rate 1 --seconds 30

Latency is per client and event: the moment the client's socket received the event's `id:` line minus the event's
commit time in JetStream (its stored timestamp, the NATS server's clock; everything runs on this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

import httpx
import nats
import uvloop
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from run import RESULTS, Stack

from xrunner.cli.bench import percentiles
from xrunner.contracts import subjects
from xrunner.servicekit.auth import mint

REALTIME = 1  # the realtime edge listens on the stack's base port + 1 (xrunner.cli.stack.SERVICES)
PER_SUBJECT = 100  # clients per token subject: under the edge's per-subject cap (500 by default)
PER_TENANT = 1000  # clients per tenant: under the per-tenant cap (2,000 by default)


class SseClient(asyncio.Protocol):
    """One SSE connection on a raw socket: the response's status, then when each `id:` line arrived."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.status: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.arrivals: list[tuple[int, float]] = []
        self.transport: asyncio.BaseTransport | None = None
        self.closed = False
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        data = self._buffer + data
        if not self.status.done():
            head, sep, data = data.partition(b"\r\n\r\n")
            if not sep:
                self._buffer = head
                return
            self.status.set_result(int(head.split(b" ", 2)[1]))
        *lines, self._buffer = data.split(b"\n")
        for line in lines:  # chunk-size lines are hex digits, so only SSE `id:` lines start like this
            if line.startswith(b"id: "):
                self.arrivals.append((int(line[4:].rstrip(b"\r")), now))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.status.done():
            self.status.set_result(0)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Bench:
    """The stack's realtime edge as seen from outside: its port, process, metrics and clients."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.port = stack.port + REALTIME
        saved = dict(line.split("=", 1) for line in (stack.dir / "env").read_text().splitlines() if "=" in line)
        self.nats_url = saved["XR_NATS_URL"]
        self.secret = (stack.dir / "secret").read_text().strip()
        self.pid = _child_pid(stack.proc.pid, "xrunner.realtime")

    def request(self, tenant: str, i: int) -> bytes:
        bearer = mint(self.secret, tenant=tenant, subject=f"bench-{i // PER_SUBJECT}", scopes=["jobs:read"],
                      issuer="xrunner", audience="xrunner", ttl_s=3600, now=int(time.time()))
        return (f"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAccept: text/event-stream\r\n"
                f"Authorization: Bearer {bearer}\r\n\r\n").encode()

    async def connect(self, n: int, tenant_of: str | None = None) -> list[SseClient]:
        """`n` clients, 200 connecting at a time; each counts once its response started with 200."""
        loop, gate = asyncio.get_running_loop(), asyncio.Semaphore(200)
        requests = [self.request(tenant_of or f"idle{i // PER_TENANT}", i) for i in range(n)]

        async def one(request: bytes) -> SseClient:
            async with gate:
                _, client = await loop.create_connection(lambda: SseClient(request), "127.0.0.1", self.port)
                status = await asyncio.wait_for(client.status, 30)
                assert status == 200, f"the edge answered {status}"
                return client

        return list(await asyncio.gather(*(one(r) for r in requests)))

    def cpu_s(self) -> float:
        """User + system CPU seconds the edge has used."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return round(int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) / 1024, 1)  # type: ignore[index]

    async def metrics(self, prefix: str) -> dict[str, float]:
        """The edge's samples whose name starts with `prefix`, by `name{labels}`."""
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{self.port}/metrics")).text
        return {k: float(v) for k, _, v in (x.rpartition(" ") for x in text.splitlines() if x.startswith(prefix))}

    async def clients_gauge(self) -> float:
        return sum((await self.metrics("xrunner_realtime_clients{")).values())

    async def lag_buckets(self) -> dict[str, float]:
        """The edge's own delivery-lag histogram: cumulative count per bucket bound (ms)."""
        buckets = await self.metrics("xrunner_realtime_delivery_lag_seconds_bucket")
        return {_bound_ms(k): v for k, v in buckets.items()}

    async def wait_gauge(self, n: int, timeout: float = 60) -> None:
        """Until the edge counts `n` connected clients (at least `n`, or none for 0)."""
        deadline = time.monotonic() + timeout
        while (count := await self.clients_gauge()) < n or (n == 0 and count > 0):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the edge counts {count} clients, not {n}")
            await asyncio.sleep(0.2)


def _bound_ms(sample: str) -> str:
    bound = sample.split('le="', 1)[1].split('"', 1)[0]
    return bound if bound == "+Inf" else f"{float(bound) * 1000:g}"


def _child_pid(parent: int, module: str) -> int:
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            stat = (proc / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and module.encode() in (proc / "cmdline").read_bytes():
                return int(proc.name)
    raise RuntimeError(f"no {module} process under {parent}")


async def latency(bench: Bench, n: int, rate: float, seconds: float) -> dict[str, object]:
    """`n` clients of one tenant watch every event while `true` jobs are submitted at `rate` per second."""
    tenant = f"lat{n}"
    clients = await bench.connect(n, tenant)
    await bench.wait_gauge(n)
    print(f"{n} clients connected; submitting jobs for {seconds:.0f} s", file=sys.stderr, flush=True)
    cpu, own, machine, edge_lag = bench.cpu_s(), time.process_time(), _machine_times(), await bench.lag_buckets()
    submitted = await _submit(bench.stack, tenant, rate, seconds)
    cpu, own = bench.cpu_s() - cpu, time.process_time() - own
    busy, total = (b - a for a, b in zip(machine, _machine_times(), strict=True))
    committed = await _settle(bench, tenant, clients)
    edge_lag = {bound: count - edge_lag[bound] for bound, count in (await bench.lag_buckets()).items()}
    lags = [(t - committed[seq]) * 1000 for c in clients for seq, t in c.arrivals if seq in committed]
    per_client_p99 = [percentiles([(t - committed[s]) * 1000 for s, t in c.arrivals if s in committed]).get("p99", 0.0)
                      for c in clients]
    dropped = sum(c.closed for c in clients)
    for client in clients:
        client.close()
    await bench.wait_gauge(0)
    return {"clients": n, "jobs": submitted, "events": len(committed), "deliveries": len(lags),
            "missing": len(committed) * n - len(lags), "dropped": dropped,
            "cpu_per_s": {"edge": round(cpu / seconds, 3), "bench_clients": round(own / seconds, 3),
                          "machine_busy": round(busy / total, 3)},
            "latency_ms": _pcts(lags), "per_client_p99_ms": _pcts(per_client_p99),
            "edge_lag_share_within_ms": {b: round(c / max(edge_lag["+Inf"], 1), 4) for b, c in edge_lag.items()}}


def _machine_times() -> tuple[int, int]:
    """(busy, total) jiffies of every core so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]  # to steal
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _pcts(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    at = percentiles(ordered)
    return {"p50": at["p50"], "p90": round(ordered[int(0.9 * len(ordered))], 3), "p99": at["p99"], "max": at["max"]}


async def _submit(stack: Stack, tenant: str, rate: float, seconds: float) -> int:
    """POST one `true` job every 1/rate s (open loop); returns how many were accepted."""
    body = {"workload": {"kind": "process", "argv": ["true"]}}
    headers = {"Authorization": f"Bearer {stack.token(tenant)}"}
    async with httpx.AsyncClient(base_url=stack.api, headers=headers, timeout=30) as http:
        start, tasks = time.perf_counter(), []
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(http.post("/v1/jobs", json=body)))
        answers = await asyncio.gather(*tasks)
    return sum(a.status_code in (201, 202) for a in answers)


async def _settle(bench: Bench, tenant: str, clients: list[SseClient], timeout: float = 60) -> dict[int, float]:
    """Once the tenant's log stops growing and every client has its last event: each event's commit time."""
    deadline, committed = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = await _commit_times(bench.nats_url, tenant)
        last = max(now, default=0)
        if len(now) == len(committed) and all(c.closed or (c.arrivals and c.arrivals[-1][0] >= last) for c in clients):
            return now
        committed = now
    return committed


async def _commit_times(nats_url: str, tenant: str) -> dict[int, float]:
    """Stream sequence → stored timestamp (s since the epoch) of every event of `tenant`."""
    nc = await nats.connect(nats_url)
    try:
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, mem_storage=True)
        sub = await nc.jetstream().pull_subscribe(subjects.job_events(tenant), durable=None,
                                                  stream=subjects.EVENTS_STREAM, config=config)
        times: dict[int, float] = {}
        pending = (await sub.consumer_info()).num_pending or 0
        while pending > 0:
            for msg in await sub.fetch(min(512, pending), timeout=5):
                times[msg.metadata.sequence.stream] = msg.metadata.timestamp.timestamp()
                pending = msg.metadata.num_pending or 0
        await sub.unsubscribe()
        return times
    finally:
        await nc.close()


async def idle(bench: Bench, n: int) -> dict[str, object]:
    """The edge's RSS before and while it holds `n` SSE connections that receive nothing but pings."""
    before = bench.rss_mib()
    began = time.perf_counter()
    clients = await bench.connect(n)
    connect_s = time.perf_counter() - began
    await bench.wait_gauge(n)
    await asyncio.sleep(2.0)
    held = bench.rss_mib()
    alive = sum(not c.closed for c in clients)
    for client in clients:
        client.close()
    await bench.wait_gauge(0)
    return {"connections": n, "held": alive, "connect_s": round(connect_s, 2), "rss_mib_0": before,
            "rss_mib_held": held, "kib_per_connection": round((held - before) * 1024 / max(n, 1), 1)}


async def scenario(bench: Bench, args: argparse.Namespace) -> dict[str, object]:
    result: dict[str, object] = {}
    if args.idle:
        result["idle"] = await idle(bench, args.idle)
    result["delivery"] = [await latency(bench, n, args.rate, args.seconds) for n in args.clients]
    result["rss_mib_end"] = bench.rss_mib()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--idle", type=int, default=5000, help="idle connections to hold (0: skip)")
    parser.add_argument("--rate", type=float, default=5.0, help="`true` jobs submitted per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    load = os.getloadavg()[0]  # other work on the machine skews every number here: recorded before and after
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the stack, so the edge too
    stack = Stack(slots=8, sync_always=False)
    try:
        bench = Bench(stack)
        result = uvloop.run(asyncio.wait_for(scenario(bench, args), 900))
        result["edge_max_open_files"] = _open_files_limit(bench.pid)
    finally:
        stack.stop()
    result |= {"rate_jobs_per_s": args.rate, "seconds": args.seconds, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
               time.gmtime()), "machine": f"{os.cpu_count()} cores", "load_avg_1m": [load, os.getloadavg()[0]]}
    name = f"realtime-{'-'.join(map(str, args.clients))}-idle{args.idle}-rate{args.rate:g}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    with (RESULTS / "SUMMARY.md").open("a") as f:
        f.write(f"- `{name}`: {json.dumps(result)}\n")
    print(json.dumps(result, indent=2))


def _open_files_limit(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if x.startswith("Max open files"))
    return int(line.split()[3])


if __name__ == "__main__":
    main()
