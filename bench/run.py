"""The benchmark harness: starts a private embedded stack (`xrunner up`), runs scenarios against its public API,
and writes results to bench/results/<scenario>[-sync].json plus a line in bench/results/SUMMARY.md.

    .venv/bin/python bench/run.py sequential            # 20 x `true`, one at a time: submit → succeeded
    .venv/bin/python bench/run.py burst --jobs 100 --cmd 'sleep 1' --tenants 3 --slots 100
    .venv/bin/python bench/run.py sequential --sync-always
    .venv/bin/python bench/run.py burst --jobs 1000 --cmd 'sleep 1' --slots 100 --batch 100
    .venv/bin/python bench/run.py sequential --image xrunner/busybox:test --warm 4 --pause 1   # docker, warm pool
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from xrunner.cli.bench import percentiles, run_bench
from xrunner.servicekit.auth import mint

RESULTS = Path(__file__).parent / "results"


def _free_base() -> int:
    for _ in range(200):
        base = random.randrange(20_000, 32_000)
        offsets = (0, 1, 2, 3, 4, 22, 32, *range(41, 49))  # the services, NATS, Postgres, extra workers
        if all(socket.socket().connect_ex(("127.0.0.1", base + o)) != 0 for o in offsets):
            return base
    raise RuntimeError("no free ports")


class Stack:
    def __init__(self, slots: int | None, sync_always: bool, warm_images: str = "", workers: int | None = None,
                 sandbox: str = "bwrap") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="xr-bench-")) / ".xrunner"
        self.port = _free_base()
        argv = [
            sys.executable,
            "-m",
            "xrunner.cli",
            "up",
            "--data-dir",
            str(self.dir),
            "--port",
            str(self.port),
            "--sandbox",
            sandbox,
        ] + (["--slots", str(slots)] if slots else []) + (["--workers", str(workers)] if workers else []) \
          + (["--sync-always"] if sync_always else []) + (["--warm-images", warm_images] if warm_images else [])
        env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.api = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while not (self.dir / "env").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("stack did not start")
            time.sleep(0.2)

    def token(self, tenant: str) -> str:
        secret = (self.dir / "secret").read_text().strip()
        return mint(
            secret,
            tenant=tenant,
            subject="bench",
            scopes=["jobs:read", "jobs:write"],
            issuer="xrunner",
            audience="xrunner",
            ttl_s=3600,
            now=int(time.time()),
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)


class Profiler:
    """`py-spy record` on some of the stack's services while a scenario runs: collapsed stacks (one line per stack
    and its sample count) in bench/results/profiles/<name>-<service>.txt."""

    def __init__(self, stack: Stack, services: list[str], name: str) -> None:
        import psutil

        RESULTS.joinpath("profiles").mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        for child in psutil.Process(stack.proc.pid).children(recursive=True):
            service = next((s for s in services if f"xrunner.{s}" in child.cmdline()), None)
            if service is None:
                continue
            out = RESULTS / "profiles" / f"{name}-{service}-{child.pid}.txt"
            argv = ["py-spy", "record", "--pid", str(child.pid), "--rate", "250", "--format", "raw", "-o", str(out)]
            self.procs.append(subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), *argv[1:]],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)  # py-spy attaches

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            proc.wait(30)


def sequential(stack: Stack, n: int, image: str | None = None, pause_s: float = 0.0) -> dict[str, object]:
    """Submit `true` (in `image` with the docker sandbox, if given), wait until it succeeded (polling every 2 ms),
    n times, `pause_s` apart (e.g. for a warm pool to refill, or to find what an idle pause costs): client-observed
    latency of the whole job and of the submit request alone, and the submit's statuses (201: admitted in time)."""
    headers = {"Authorization": f"Bearer {stack.token('bench')}"}
    workload = {"kind": "docker", "image": image} if image else {"kind": "process"}
    body = {"workload": {**workload, "argv": ["true"]}}
    wall, server, started, submit = [], [], [], []
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=stack.api, headers=headers) as http:
        for _ in range(3):  # warm up connections and code paths
            _run_one(http, body, [], {})
        for _ in range(n):
            time.sleep(pause_s)
            began = time.perf_counter()
            job = _run_one(http, body, submit, statuses)
            wall.append((time.perf_counter() - began) * 1000)
            server.append(_ms(job["created_at"], job["finished_at"]))
            started.append(_ms(job["created_at"], job["started_at"]))
    return {
        "n": n,
        "submit_to_succeeded_ms": percentiles(wall),
        "submit_to_succeeded_ms_median": round(statistics.median(wall), 2),
        "submit_request_ms": percentiles(submit),
        "submit_statuses": statuses,
        "server_created_to_finished_ms_median": round(statistics.median(server), 2),
        "server_created_to_started_ms": percentiles(started),
        "samples_ms": wall,
    }


def submits(stack: Stack, n: int, pause_s: float = 0.0) -> dict[str, object]:
    """POST /v1/jobs one at a time (keep-alive), `pause_s` apart, jobs to a pool no worker serves: the submit
    request's own latency (admission included) and its statuses (201: admitted within the gateway's wait)."""
    headers = {"Authorization": f"Bearer {stack.token('bench')}", "Content-Type": "application/json"}
    body = b'{"workload": {"kind": "process", "argv": ["true"]}, "resources": {"pool": "nowhere"}}'
    latencies: list[float] = []
    admission: list[float] = []  # the job's created_at (the gateway's clock) to its queued_at (the scheduler's)
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=stack.api, headers=headers) as http:
        for _ in range(5):  # warm up the connection and code paths
            http.post("/v1/jobs", content=body)
        for _ in range(n):
            time.sleep(pause_s)
            began = time.perf_counter()
            response = http.post("/v1/jobs", content=body)
            latencies.append((time.perf_counter() - began) * 1000)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            job = response.json()["job"]
            if job.get("queued_at"):
                admission.append(_ms(job["created_at"], job["queued_at"]))
    return {"n": n, "submit_request_ms": percentiles(latencies), "created_to_queued_ms": percentiles(admission),
            "submit_statuses": statuses, "samples_ms": latencies}


async def api(stack: Stack, rate: float, seconds: float, batch_jobs: int, tenants: int = 1) -> dict[str, object]:
    """POST /v1/jobs at a fixed rate (open loop), round-robin over `tenants` tenants (each gateway limits a tenant to
    200 requests/s by default), then `batch_jobs` jobs through POST /v1/jobs/batch (1,000 a request, 10 at once):
    submit latency percentiles and how long the batch took to be durably accepted."""
    headers = {"Authorization": f"Bearer {stack.token('api')}", "Content-Type": "application/json"}
    tenant_headers = [{"Authorization": f"Bearer {stack.token(f'api{i}')}"} for i in range(tenants)]
    # The jobs go to a pool no worker serves: this measures the API and admission, not the machine's job capacity.
    body = b'{"workload": {"kind": "process", "argv": ["true"]}, "resources": {"pool": "nowhere"}}'
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(base_url=stack.api, headers=headers, limits=limits, timeout=60) as http:

        async def one(i: int) -> None:
            began = time.perf_counter()
            response = await http.post("/v1/jobs", content=body, headers=tenant_headers[i % tenants])
            latencies.append((time.perf_counter() - began) * 1000)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        batch_body = b'{"jobs": [' + b",".join([body] * 1000) + b"]}"
        began = time.perf_counter()
        answers = await asyncio.gather(*(http.post("/v1/jobs/batch", content=batch_body)
                                         for _ in range(batch_jobs // 1000)))
        batch_s = time.perf_counter() - began
    return {"rate_per_s": rate, "tenants": tenants, "requests": len(latencies), "statuses": statuses,
            "submit_ms": percentiles(latencies), "batch_jobs": batch_jobs, "batch_accepted_s": round(batch_s, 3),
            "batch_statuses": sorted({a.status_code for a in answers})}


def _run_one(http: httpx.Client, body: dict[str, object], submit_ms: list[float],
             statuses: dict[int, int]) -> dict[str, object]:
    began = time.perf_counter()
    response = http.post("/v1/jobs", json=body)
    submit_ms.append((time.perf_counter() - began) * 1000)
    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    job = response.json()["job"]
    while job["state"] not in ("succeeded", "failed"):
        time.sleep(0.002)
        job = http.get(f"/v1/jobs/{job['id']}").json()
    assert job["state"] == "succeeded", job
    return job


def _ms(a: str, b: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["sequential", "submit", "burst", "api"])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--cmd", default="true")
    parser.add_argument("--tenants", type=int, default=1)
    parser.add_argument("--slots", type=int, default=0, help="per worker process (0: `xrunner up`'s default)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0: `xrunner up`'s default)")
    parser.add_argument("--sandbox", default="bwrap", choices=["bwrap", "none"])
    parser.add_argument("--tag", default="", help="appended to the result's name (e.g. before, after)")
    parser.add_argument("--profile", default="", help="comma-separated services to record with py-spy")
    parser.add_argument("--sync-always", action="store_true")
    parser.add_argument("--batch", type=int, default=0, help="submit in batches of this size")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--image", help="sequential: run `true` in this docker image")
    parser.add_argument("--warm", type=int, default=0, help="warm containers of --image")
    parser.add_argument("--pause", type=float, default=0.0, help="sequential: seconds between jobs")
    args = parser.parse_args()
    load_before = os.getloadavg()
    stack = Stack(args.slots, args.sync_always, f"{args.image}={args.warm}" if args.image and args.warm else "",
                  args.workers, args.sandbox)
    profiler = Profiler(stack, args.profile.split(","), f"{args.scenario}-{args.tag}") if args.profile else None
    try:
        if args.scenario == "sequential":
            result = sequential(stack, args.jobs, args.image, args.pause)
        elif args.scenario == "submit":
            result = submits(stack, args.jobs, args.pause)
        elif args.scenario == "api":
            result = asyncio.run(api(stack, args.rate, args.seconds, args.jobs, args.tenants))
        else:
            tokens = [stack.token(f"t{i}") for i in range(args.tenants)]
            bench = asyncio.run(run_bench(stack.api, tokens, ["sh", "-c", args.cmd], args.jobs, args.concurrency, 600,
                                          False, batch=args.batch))
            result = {k: v for k, v in bench.__dict__.items() if k != "samples"}
    finally:
        if profiler is not None:
            profiler.stop()
        stack.stop()
    result |= {
        "scenario": args.scenario,
        "sync_always": args.sync_always,
        "slots": args.slots,
        "workers": args.workers,
        "sandbox": args.sandbox,
        "cmd": args.cmd,
        "image": args.image,
        "warm": args.warm,
        "pause_s": args.pause,
        "load_average_before": load_before,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} cores",
    }
    RESULTS.mkdir(exist_ok=True)
    name = f"{args.scenario}-{args.jobs}-{args.cmd.replace(' ', '')}"
    name += f"-slots{args.slots}" if args.slots else ""
    name += f"-workers{args.workers}" if args.workers else ""
    name += "-unsandboxed" if args.sandbox == "none" else ""
    name += f"{'-batch' + str(args.batch) if args.batch else ''}{'-sync' if args.sync_always else ''}"
    name += f"-docker-warm{args.warm}" if args.image else ""
    name += f"-pause{args.pause:g}" if args.pause else ""
    name += f"-{args.tag}" if args.tag else ""
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    shown = {k: v for k, v in result.items() if k != "samples_ms"}
    with (RESULTS / "SUMMARY.md").open("a") as f:
        f.write(f"- `{name}`: {json.dumps(shown)}\n")
    print(json.dumps(shown, indent=2))


if __name__ == "__main__":
    main()
