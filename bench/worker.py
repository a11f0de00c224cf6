"""One worker alone: how fast it starts and finishes sandboxed jobs, and what a running job costs it in memory.

No gateway or scheduler: the harness writes each job's history up to `job.dispatched` itself (as the scheduler
would) and puts the work items on `xr.run.<pool>`, then starts one worker process and watches the job events.
That isolates the worker's cost from the rest of the pipeline (bench/run.py measures the whole of it).

    .venv/bin/python bench/worker.py throughput --jobs 2000 --slots 64      # `true`, jobs/s on one worker
    .venv/bin/python bench/worker.py latency --jobs 200                     # work item → job.started, one at a time
    .venv/bin/python bench/worker.py latency --jobs 200 --set sandbox=none --set warm_shells=0 --label cold
    .venv/bin/python bench/worker.py memory --jobs 1000                     # RSS per running job, and in a log flood
    .venv/bin/python bench/worker.py stops --jobs 20                        # how long past a timeout or cancel

Results go to bench/results/worker-<scenario>.json and a line in bench/results/SUMMARY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from nats.aio.msg import Msg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # shares the tests' scheduler-less dispatch
from integration.direct import dispatch

from xrunner.cli import embedded
from xrunner.cli.bench import percentiles
from xrunner.contracts import events as ev
from xrunner.contracts import subjects
from xrunner.contracts.spec import JobSpec, ProcessWorkload
from xrunner.servicekit import streams
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id

RESULTS = Path(__file__).parent / "results"
TENANT, POOL = "bench", "bench"
TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")


class Harness:
    """A private nats-server, the job events seen so far, and one worker process."""

    def __init__(self, base: Path) -> None:
        self.base, self.port = base, embedded.free_port()
        self.nats = embedded.start_nats(base / "nats", self.port)
        self.url = f"nats://127.0.0.1:{self.port}"
        self.seen: dict[str, dict[str, float]] = {}  # job id → event kind → arrival (unix time)
        self.worker: subprocess.Popen[bytes] | None = None

    async def connect(self) -> None:
        self.nc = await streams.connect(self.url, "bench-worker")
        self.js = self.nc.jetstream(timeout=30)
        await streams.declare(self.js)

        async def on_event(msg: Msg) -> None:
            _, job_id, token = subjects.parse_job_event(msg.subject)
            self.seen.setdefault(job_id, {})[token] = time.time()

        await self.nc.subscribe(subjects.job_events(TENANT), cb=on_event)

    async def dispatch(self, argv: list[str], timeout_s: float = 600) -> tuple[str, float]:
        """Dispatch one job straight to the worker's pool; returns (id, unix time of its dispatch)."""
        spec = JobSpec(workload=ProcessWorkload(argv=argv), timeout_s=timeout_s)
        job_id, at = await dispatch(self.js, TENANT, POOL, spec)
        return job_id, at.timestamp()

    def start_worker(self, slots: int, **settings: object) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
        env |= {"XR_NATS_URL": self.url, "XR_WORKER_POOL": POOL, "XR_WORKER_SLOTS": str(slots),
                "XR_WORKER_WORKER_ID": f"bench-{self.port}", "XR_WORKER_HTTP_PORT": str(embedded.free_port()),
                "XR_WORKER_WORKSPACE_DIR": str(self.base / "ws"), "XR_WORKER_ARTIFACT_DIR": str(self.base / "art"),
                "XR_LOG_LEVEL": "warning"}
        env |= {f"XR_WORKER_{k.upper()}": str(v) for k, v in settings.items()}
        self.worker = embedded.spawn([sys.executable, "-m", "xrunner.worker"], self.base / "worker.log", env=env)

    def rss_kib(self) -> int:
        assert self.worker is not None
        for line in Path(f"/proc/{self.worker.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    async def until(self, done: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not callable(done) or not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; worker log: {self.base / 'worker.log'}")
            await asyncio.sleep(0.01)

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds used so far by the worker itself, by its reaped children (the sandboxes and jobs), and by
        nats-server."""
        assert self.worker is not None
        tick = os.sysconf("SC_CLK_TCK")

        def fields(pid: int) -> list[int]:
            stat = Path(f"/proc/{pid}/stat").read_text()
            return [int(x) for x in stat[stat.rindex(")") + 2 :].split()[11:15]]

        w, n = fields(self.worker.pid), fields(self.nats.pid)
        return {"worker": round((w[0] + w[1]) / tick, 2), "children": round((w[2] + w[3]) / tick, 2),
                "nats": round((n[0] + n[1]) / tick, 2)}

    def finished(self, ids: list[str]) -> int:
        return sum(1 for i in ids if any(k in self.seen.get(i, {}) for k in TERMINAL))

    def started(self, ids: list[str]) -> int:
        return sum(1 for i in ids if "started" in self.seen.get(i, {}))

    async def close(self) -> None:
        if self.worker is not None:
            self.worker.send_signal(signal.SIGTERM)
            self.worker.wait(60)
        await self.nc.close()
        embedded.stop(self.nats)


async def throughput(
    h: Harness, jobs: int, slots: int, argv: list[str], settings: dict[str, str]
) -> dict[str, object]:
    """All work items queued first, then the worker starts: jobs/s from its first `started` to its last outcome."""
    ids = [(await h.dispatch(argv))[0] for _ in range(jobs)]
    h.start_worker(slots, **settings)
    await h.until(lambda: h.finished(ids) == jobs, 600, "all jobs")
    first = min(h.seen[i]["started"] for i in ids)
    last = max(t for i in ids for k, t in h.seen[i].items() if k in TERMINAL)
    outcomes = {k: sum(1 for i in ids if k in h.seen[i]) for k in TERMINAL}
    cpu = h.cpu_s()
    return {"jobs": jobs, "slots": slots, "argv": argv, "settings": settings, "seconds": round(last - first, 3),
            "jobs_per_s": round(jobs / (last - first), 1), "outcomes": outcomes, "cpu_s": cpu,
            "cpu_ms_per_job": {k: round(v * 1000 / jobs, 2) for k, v in cpu.items()}}


async def latency(h: Harness, jobs: int, settings: dict[str, str]) -> dict[str, object]:
    """One job at a time on an idle worker: `job.dispatched` → `job.started` seen, and → outcome seen."""
    h.start_worker(4, **settings)
    await asyncio.sleep(2)  # let it subscribe and warm up
    to_started, to_done = [], []
    for _ in range(jobs):
        job_id, dispatched = await h.dispatch(["true"])
        await h.until(lambda: h.finished([job_id]) == 1, 30, "the job")  # noqa: B023 (awaited at once)
        to_started.append((h.seen[job_id]["started"] - dispatched) * 1000)
        to_done.append((max(t for k, t in h.seen[job_id].items() if k in TERMINAL) - dispatched) * 1000)
    return {"jobs": jobs, "settings": settings, "dispatched_to_started_ms": percentiles(to_started),
            "dispatched_to_outcome_ms": percentiles(to_done),
            "started_to_outcome_ms": percentiles([d - s for s, d in zip(to_started, to_done, strict=True)])}


async def memory(h: Harness, jobs: int) -> dict[str, object]:
    """RSS of the worker idle, with `jobs` sleeping jobs, and with `jobs // 10` jobs flooding their logs."""
    h.start_worker(jobs)
    await asyncio.sleep(3)
    idle = h.rss_kib()
    sleepers = [(await h.dispatch(["sleep", "30"], timeout_s=60))[0] for _ in range(jobs)]
    await h.until(lambda: h.started(sleepers) == jobs, 300, "every sleeper to start")
    await asyncio.sleep(1)
    busy = h.rss_kib()
    await h.until(lambda: h.finished(sleepers) == jobs, 120, "the sleepers to end")
    floods = [(await h.dispatch(["sh", "-c", "timeout 5 yes flood-line-of-a-log-that-goes-on-and-on"]))[0]
              for _ in range(max(1, jobs // 10))]
    samples = []
    while h.finished(floods) < len(floods):
        samples.append(h.rss_kib())
        await asyncio.sleep(0.25)
    return {"running_jobs": jobs, "idle_rss_mib": round(idle / 1024, 1), "busy_rss_mib": round(busy / 1024, 1),
            "rss_per_running_job_kib": round((busy - idle) / jobs, 1), "flood_jobs": len(floods),
            "flood_rss_mib": {"min": round(min(samples) / 1024, 1), "max": round(max(samples) / 1024, 1)},
            "flood_rss_mib_every_250ms": [round(s / 1024, 1) for s in samples]}


async def stops(h: Harness, jobs: int) -> dict[str, object]:
    """How long past its limit a job is stopped (the timing the integration tests leave to this harness): a 1 s
    execution timeout (`job.started` → `job.timed_out` seen, minus 1 s), a cancel a job obeys (request →
    `job.cancelled` seen) and one it ignores, killed after a 1 s grace (minus 1 s)."""
    h.start_worker(2 * jobs, kill_grace_s=1)
    timed = [(await h.dispatch(["sleep", "30"], timeout_s=1))[0] for _ in range(jobs)]
    polite = [(await h.dispatch(["sleep", "30"]))[0] for _ in range(jobs)]
    stubborn = [(await h.dispatch(["sh", "-c", "trap '' TERM; sleep 30"]))[0] for _ in range(jobs)]
    await h.until(lambda: h.finished(timed) == jobs and h.started(polite + stubborn) == 2 * jobs, 120, "the jobs")
    requested = {job_id: await _cancel(h, job_id) for job_id in polite + stubborn}
    await h.until(lambda: h.finished(polite + stubborn) == 2 * jobs, 120, "the cancels")
    past_timeout = [(h.seen[i]["timed_out"] - h.seen[i]["started"] - 1) * 1000 for i in timed]
    obeyed = [(h.seen[i]["cancelled"] - requested[i]) * 1000 for i in polite]
    killed = [(h.seen[i]["cancelled"] - requested[i] - 1) * 1000 for i in stubborn]
    return {"jobs": jobs, "timeout_overshoot_ms": percentiles(past_timeout),
            "cancel_obeyed_ms": percentiles(obeyed), "cancel_after_grace_overshoot_ms": percentiles(killed)}


async def _cancel(h: Harness, job_id: str) -> float:
    """Ask to cancel attempt 1 of `job_id` as the gateway does; returns the unix time of the request."""
    now = time.time()
    request = ev.JobCancelRequested(event_id=new_id(), occurred_at=datetime.fromtimestamp(now, UTC), tenant=TENANT,
                                    job_id=job_id, attempt=1, reason="bench")
    await EventStore(h.js).append(request, msg_id=f"{job_id}:cancel_requested")
    return now


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["throughput", "latency", "memory", "stops"])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--cmd", default="true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a worker setting (XR_WORKER_<KEY>), e.g. sandbox=none or warm_shells=0")
    parser.add_argument("--label", default="", help="appended to the result's name")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    h = Harness(Path(tempfile.mkdtemp(prefix="xr-bench-worker-")))
    try:
        await h.connect()
        if args.scenario == "throughput":
            result = await throughput(h, args.jobs, args.slots, args.cmd.split(), settings)
        elif args.scenario == "latency":
            result = await latency(h, args.jobs, settings)
        elif args.scenario == "stops":
            result = await stops(h, args.jobs)
        else:
            result = await memory(h, args.jobs)
    finally:
        await h.close()
    result |= {"scenario": f"worker-{args.scenario}", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": f"{os.cpu_count()} cores"}
    RESULTS.mkdir(exist_ok=True)
    name = f"worker-{args.scenario}" + (f"-{args.label}" if args.label else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    with (RESULTS / "SUMMARY.md").open("a") as f:
        f.write(f"- `{name}`: {msgspec.json.encode(result).decode()}\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
