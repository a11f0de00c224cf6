"""NATS node loss under load: `xrunner up --cluster 3`, jobs submitted through the gateway, and the node that leads
the log (`XR_EVENTS`) SIGKILLed in the middle of the flow; `xrunner up` restarts it. Afterwards the log is read back
and judged: every accepted job ended once, no attempt started twice, nothing ran twice to completion; the submits'
errors and latencies are what the clients saw. Writes JSON (`--out`); tests/e2e/test_cluster.py runs it small.

    python bench/cluster.py --jobs 300 --out bench/results/cluster-node-loss.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from tempfile import mkdtemp

import httpx

from xrunner.contracts import events as ev
from xrunner.contracts import subjects
from xrunner.servicekit import streams
from xrunner.servicekit.auth import SCOPES, mint
from xrunner.servicekit.eventstore import EventStore

TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "expired", "rejected"}
PORT_OFFSETS = (0, 1, 2, 3, 4, *range(22, 31), 32, 41)  # services, NATS clients/routes/monitoring, Postgres, worker 2


@dataclass
class Submit:
    at: float  # seconds since the load began
    latency_s: float
    status: int | None
    job_id: str | None
    error: str | None = None


@dataclass
class Result:
    jobs: int
    killed_node: str = ""
    killed_at_s: float = 0.0  # since the load began
    node_ready_again_s: float | None = None  # from the kill until the restarted node served (supervisor log)
    submit_errors: int = 0
    longest_error_window_s: float = 0.0
    submit_latency_max_s: float = 0.0
    submit_latency_p50_s: float = 0.0
    submit_latency_max_around_kill_s: float = 0.0  # submits begun within 15 s after the kill
    states: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)  # accepted, never terminal in the log
    duplicated: list[str] = field(default_factory=list)  # two ends, two `succeeded`, or an attempt started twice
    settled_s: float = 0.0  # from the kill until every job was terminal
    examples: list[str] = field(default_factory=list)


def free_base() -> int:
    for port in range(21_000, 32_000, 97):
        if all(_free(port + off) for off in PORT_OFFSETS):
            return port
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start_stack(data_dir: Path, port: int, workers: int, slots: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
    command = [sys.executable, "-m", "xrunner.cli", "up", "--cluster", "3", "--data-dir", str(data_dir), "--port",
               str(port), "--workers", str(workers), "--slots", str(slots), "--sandbox", "none"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while not (data_dir / "env").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_stack(proc)
            raise RuntimeError(f"xrunner up --cluster 3 did not come up; logs in {data_dir / 'logs'}")
        time.sleep(0.2)
    return proc


def stop_stack(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def env_of(data_dir: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (data_dir / "env").read_text().splitlines() if "=" in line)


def token(data_dir: Path, tenant: str) -> str:
    secret = (data_dir / "secret").read_text().strip()
    return mint(secret, tenant=tenant, subject=f"{tenant}-bench", scopes=list(SCOPES), issuer="xrunner",
                audience="xrunner", ttl_s=3600, now=int(time.time()))


async def events_leader(nats_url: str) -> str:
    nc = await streams.connect(nats_url, "bench-cluster")
    try:
        info = await nc.jetstream().stream_info(subjects.EVENTS_STREAM)
        assert info.cluster is not None and info.cluster.leader, "XR_EVENTS has no leader"
        return str(info.cluster.leader)
    finally:
        await nc.close()


def node_pid(data_dir: Path, name: str) -> int:
    """The pid of the nats-server running node `name` of the stack in `data_dir`."""
    marker = f"{data_dir.resolve()}/nats/{name}/nats.conf".encode()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except OSError:
            continue
    raise RuntimeError(f"no nats-server process for {name}")


async def submit_all(client: httpx.AsyncClient, jobs: int, over_s: float, concurrency: int, argv: list[str],
                     begun: float, on_submitted: asyncio.Event, kill_after: int) -> list[Submit]:
    """`jobs` submits paced over `over_s`; `on_submitted` is set once `kill_after` of them were answered."""
    gate = asyncio.Semaphore(concurrency)
    out: list[Submit] = []

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, begun + i * over_s / jobs - time.monotonic()))
        async with gate:
            key, started = uuid.uuid4().hex, time.monotonic()
            try:
                answer = await client.post("/v1/jobs", json={"workload": {"kind": "process", "argv": argv}},
                                           headers={"Idempotency-Key": key})
                ok = answer.status_code in (200, 201, 202)
                out.append(Submit(started - begun, time.monotonic() - started, answer.status_code,
                                  answer.json()["job"]["id"] if ok else None, None if ok else answer.text[:200]))
            except httpx.HTTPError as exc:
                out.append(Submit(started - begun, time.monotonic() - started, None, None, repr(exc)))
            if len(out) >= kill_after:
                on_submitted.set()

    await asyncio.gather(*(one(i) for i in range(jobs)))
    return out


async def wait_terminal(client: httpx.AsyncClient, job_ids: list[str], timeout_s: float) -> dict[str, str]:
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    gate = asyncio.Semaphore(16)

    async def state(job_id: str) -> None:
        async with gate:
            try:
                answer = await client.get(f"/v1/jobs/{job_id}")
                if answer.status_code == 200:
                    states[job_id] = answer.json()["state"]
            except httpx.HTTPError:
                pass

    while time.monotonic() < deadline:
        await asyncio.gather(*(state(j) for j in job_ids if states.get(j) not in TERMINAL))
        if all(states.get(j) in TERMINAL for j in job_ids):
            break
        await asyncio.sleep(0.5)
    return states


async def judge(nats_url: str, tenant: str, job_ids: list[str], result: Result) -> None:
    """From the log: one terminal event per job, no second `succeeded`, no attempt started twice."""
    nc = await streams.connect(nats_url, "bench-cluster-judge")
    store = EventStore(nc.jetstream())
    try:
        for job_id in job_ids:
            history = [e for _, e in await store.history(tenant, job_id)]
            ends = [e for e in history if _terminal(e)]
            started = Counter(e.attempt for e in history if isinstance(e, ev.JobStarted))
            succeeded = sum(isinstance(e, ev.JobSucceeded) for e in history)
            if not ends:
                result.lost.append(job_id)
                result.examples.append(f"{job_id}: no end; last {type(history[-1]).__name__ if history else None}")
            if len(ends) > 1 or succeeded > 1 or any(n > 1 for n in started.values()):
                result.duplicated.append(job_id)
                result.examples.append(f"{job_id}: {[type(e).__name__ for e in history]}")
    finally:
        await nc.close()


def _terminal(event: ev.Event) -> bool:
    if isinstance(event, ev.JobFailed):
        return event.final
    return isinstance(event, (ev.JobSucceeded, ev.JobTimedOut, ev.JobCancelled, ev.JobExpired, ev.JobRejected))


def error_window(submits: list[Submit]) -> float:
    """The longest span from the start of a failed submit to the end of the last failed one after it without an
    accepted submit in between (0 without errors)."""
    longest, window_start, window_end = 0.0, None, 0.0
    for s in sorted(submits, key=lambda s: s.at):
        if s.error is None:
            if window_start is not None:
                longest, window_start = max(longest, window_end - window_start), None
            continue
        window_start = s.at if window_start is None else window_start
        window_end = s.at + s.latency_s
    if window_start is not None:
        longest = max(longest, window_end - window_start)
    return longest


def node_back_after(data_dir: Path, name: str) -> float | None:
    for line in (data_dir / "logs" / "supervisor.log").read_text().splitlines():
        if f"nats-server {name} serves again" in line:
            return float(line.split(", ")[-1].split("s after")[0])
    return None


async def scenario(data_dir: Path, port: int, jobs: int, over_s: float, argv: list[str]) -> Result:
    nats_url = env_of(data_dir)["XR_NATS_URL"]
    tenant = "loss"
    result = Result(jobs=jobs)
    headers = {"Authorization": f"Bearer {token(data_dir, tenant)}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
        begun, third = time.monotonic(), asyncio.Event()
        load = asyncio.create_task(submit_all(client, jobs, over_s, 16, argv, begun, third, jobs // 3))
        await third.wait()
        result.killed_node = await events_leader(nats_url)
        os.kill(node_pid(data_dir, result.killed_node), signal.SIGKILL)
        killed = time.monotonic()
        result.killed_at_s = killed - begun
        submits = await load
        accepted = [s.job_id for s in submits if s.job_id]
        states = await wait_terminal(client, accepted, timeout_s=120)
        result.settled_s = time.monotonic() - killed
    result.states = dict(Counter(states.get(j, "unknown") for j in accepted))
    result.submit_errors = sum(s.error is not None for s in submits)
    result.examples += [f"submit at {s.at:.2f}s: {s.error}" for s in submits if s.error][:5]
    result.longest_error_window_s = round(error_window(submits), 3)
    latencies = sorted(s.latency_s for s in submits)
    result.submit_latency_max_s = round(latencies[-1], 3)
    result.submit_latency_p50_s = round(latencies[len(latencies) // 2], 3)
    around = [s.latency_s for s in submits if result.killed_at_s - 1 <= s.at <= result.killed_at_s + 15]
    result.submit_latency_max_around_kill_s = round(max(around, default=0.0), 3)
    result.node_ready_again_s = node_back_after(data_dir, result.killed_node)
    await judge(nats_url, tenant, accepted, result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--over", type=float, default=8.0, help="seconds the submits are spread over")
    parser.add_argument("--cmd", default="true", help="the shell command each job runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=16)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(mkdtemp(prefix="xr-cluster-")) / ".xrunner"
    port = free_base()
    proc = start_stack(data_dir, port, args.workers, args.slots)
    try:
        result = asyncio.run(scenario(data_dir, port, args.jobs, args.over, ["sh", "-c", args.cmd]))
    finally:
        stop_stack(proc)
    text = json.dumps(asdict(result), indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
