"""CPU per job, by process: starts a private embedded stack (bench/run.py's `Stack`), warms it up, then drives N
jobs through the public API (one `POST /v1/jobs` per job, `--concurrency` in flight, completion seen by push on
the realtime edge's `/v1/events`) and reads utime + stime of every process of the stack from /proc before and
after. Writes bench/results/cpu-<label>.json; with `--profile`, py-spy samples each Python service meanwhile and
the result also holds each service's hottest frames (self and total), the raw stacks in bench/results/profiles/.

    .venv/bin/python bench/cpu.py --jobs 3000 --slots 64 --sandbox none --label before
    .venv/bin/python bench/cpu.py --jobs 3000 --slots 64 --sandbox none --label before --profile
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
from run import RESULTS, Stack

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
SERVICES = ("gateway", "scheduler", "worker", "realtime", "artifacts")


def _stat(pid: int) -> tuple[int, int, int]:
    """(ppid, own utime + stime, reaped children's cutime + cstime) in clock ticks."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def _role(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    text = b" ".join(argv).decode(errors="replace")
    if "nats-server" in text:
        return "nats-server"
    if "postgres" in text:
        return "postgres"
    for name in SERVICES:
        if f"xrunner.{name}" in text:
            return name
    return "other"


def snapshot(root: int) -> dict[str, float]:
    """CPU ms so far of each top-level process under `root` (the `xrunner up` supervisor) with everything below
    it: own time, reaped children's time, live descendants' time. The worker's descendants are the jobs (counted
    apart as `jobs`); Postgres' are its backends."""
    table: dict[int, tuple[int, int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                table[int(entry.name)] = _stat(int(entry.name))
            except (OSError, ValueError):
                continue
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)

    def below(pid: int) -> int:
        return sum(table[c][1] + table[c][2] + below(c) for c in children.get(pid, []))

    out: Counter[str] = Counter({"supervisor": table[root][1]})
    for pid in children.get(root, []):
        role = _role(pid)
        own, reaped = table[pid][1], table[pid][2]
        if role == "worker":
            out["worker"] += own
            out["jobs"] += reaped + below(pid)
        else:
            out[role] += own + reaped + below(pid)
    me = table[os.getpid()]
    out["client"] = me[1]
    return {k: v * TICK_MS for k, v in out.items()}


def service_pids(root: int) -> dict[str, int]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if _stat(int(entry.name))[0] == root and (role := _role(int(entry.name))) in SERVICES:
                    found[role] = int(entry.name)
            except (OSError, ValueError):
                continue
    return found


async def drive(stack: Stack, jobs: int, concurrency: int, argv: list[str]) -> dict[str, float]:
    """Submit `jobs` jobs one request each, at most `concurrency` in flight; return once the tenant feed showed
    every one ended. Returns the submit and wall times. (A submit that failed in transport is sent again, and
    counted: a job may then run twice, once unobserved.)"""
    token = stack.token("cpu")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"workload": {"kind": "process", "argv": argv}}).encode()
    realtime = f"http://127.0.0.1:{stack.port + 1}"
    ended: set[str] = set()
    ours: set[str] = set()
    all_done = asyncio.Event()
    retries: list[int] = []
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=stack.api, headers=headers, limits=limits, timeout=120) as http:
        feed_ready = asyncio.Event()

        async def feed() -> None:
            params, last = {"type": ["succeeded", "failed"]}, ""
            while True:  # resumes after a dropped connection from the last event it saw
                resume = {"Last-Event-ID": last} if last else {}
                with contextlib.suppress(httpx.TransportError):
                    async with http.stream("GET", f"{realtime}/v1/events", params=params, headers=resume,
                                           timeout=None) as response:
                        feed_ready.set()
                        async for line in response.aiter_lines():
                            if line.startswith("id: "):
                                last = line[4:]
                            elif line.startswith("data: "):
                                ended.add(json.loads(line[6:])["job_id"])
                                if len(ours) == jobs and ours <= ended:
                                    all_done.set()

        listener = asyncio.create_task(feed())
        await asyncio.wait_for(feed_ready.wait(), 30)
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                for _ in range(3):  # a kept-alive connection the server closed as the request went out
                    try:
                        response = await http.post("/v1/jobs", content=body)
                        break
                    except httpx.TransportError:
                        retries.append(1)
                response.raise_for_status()
                ours.add(response.json()["job"]["id"])

        began = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(jobs)))
        submitted = time.perf_counter() - began
        if ours <= ended:
            all_done.set()
        await asyncio.wait_for(all_done.wait(), 600)
        wall = time.perf_counter() - began
        listener.cancel()
    return {"submit_s": round(submitted, 3), "wall_s": round(wall, 3), "jobs_per_s": round(jobs / wall, 1),
            "submit_retries": len(retries)}


def start_profilers(root: int, out: Path, rate: int, perf: bool) -> list[subprocess.Popen[bytes]]:
    """py-spy on each Python service (without pausing it); with `perf`, also `perf record` of them all, for the
    time spent outside Python frames (the kernel, uvloop, asyncpg, msgspec: py-spy's --native pauses the process
    at each sample, which the services do not survive under load)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.mkdir(parents=True, exist_ok=True)
    pids = service_pids(root)
    procs = [subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                               "--nonblocking", "-o", str(out / f"{name}.txt")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, pid in pids.items()]
    if perf:
        (out / "pids.json").write_text(json.dumps(pids))
        procs.append(subprocess.Popen(["perf", "record", "-F", "499", "-o", str(out / "perf.data"), "-p",
                                       ",".join(map(str, pids.values()))],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def by_library(out: Path, top: int = 8) -> dict[str, list[tuple[str, float]]]:
    """From `perf record`: each service's samples by shared object (kernel, libpython, uvloop, asyncpg ...)."""
    pids = {str(pid): name for name, pid in json.loads((out / "pids.json").read_text()).items()}
    report = subprocess.run(["perf", "report", "-i", str(out / "perf.data"), "--stdio", "--sort", "pid,dso",
                             "--percent-limit", "0.3"], capture_output=True, text=True, check=True).stdout
    shares: dict[str, list[tuple[str, float]]] = {}
    for line in report.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith("%") and ":" in parts[1]:
            pid = parts[1].split(":")[0]
            shares.setdefault(pids.get(pid, pid), []).append((Path(parts[2]).name.strip("[]"), float(parts[0][:-1])))
    return {name: rows[:top] for name, rows in shares.items()}


def stop_profilers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    for proc in procs:
        proc.wait(60)


def hottest(raw: Path, top: int = 12) -> dict[str, object]:
    """From py-spy's collapsed stacks: the frames where most samples were (self) and that most samples passed
    through (total), as percentages of the process's samples (idle samples are not recorded: --idle is off)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_short(f) for f in stack.split(";")]
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for name in set(frames):
            total[name] += n

    def pct(c: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / max(1, samples), 1)) for name, n in c.most_common(top)]

    return {"samples": samples, "self": pct(own), "total": pct(total)}


def _short(frame: str) -> str:
    """`func (path/to/module.py:123)` → `func (module.py)`."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rsplit(':', 1)[0]).name})" if where else name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--sandbox", default="none")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--cmd", default="true")
    parser.add_argument("--label", default="run")
    parser.add_argument("--profile", action="store_true", help="py-spy each Python service during the run")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--perf", action="store_true", help="with --profile: also perf, by shared object")
    args = parser.parse_args()
    load_before = os.getloadavg()
    stack = Stack(args.slots, False, sandbox=args.sandbox)
    argv = args.cmd.split()
    try:
        asyncio.run(drive(stack, args.warmup, args.concurrency, argv))
        root = stack.proc.pid
        profilers = start_profilers(root, RESULTS / "profiles" / args.label, args.rate,
                                     args.perf) if args.profile else []
        before = snapshot(root)
        timing = asyncio.run(drive(stack, args.jobs, args.concurrency, argv))
        after = snapshot(root)
        stop_profilers(profilers)
    finally:
        stack.stop()
    per_job = {k: round((after[k] - before.get(k, 0.0)) / args.jobs, 3) for k in after}
    services = sum(v for k, v in per_job.items() if k not in ("client", "jobs", "supervisor"))
    result: dict[str, object] = {
        "label": args.label, "jobs": args.jobs, "slots": args.slots, "sandbox": args.sandbox, "cmd": args.cmd,
        "concurrency": args.concurrency, "profiled": args.profile, **timing,
        "cpu_ms_per_job": dict(sorted(per_job.items(), key=lambda kv: -kv[1])),
        "cpu_ms_per_job_system": round(services, 2),
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": f"{os.cpu_count()} cores",
    }
    if args.profile:
        result["profile"] = {name: hottest(path)
                             for name in SERVICES
                             if (path := RESULTS / "profiles" / args.label / f"{name}.txt").exists()}
        if args.perf:
            result["perf_by_library"] = by_library(RESULTS / "profiles" / args.label)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"cpu-{args.label}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "profile"}, indent=2))


if __name__ == "__main__":
    main()
