"""The docker sandbox's benchmark, through DockerSandbox directly (no NATS, no scheduler): how long `true` takes
from `start` to its exit and the end of its output, warm vs cold, and how many docker jobs a second a warm pool of
size N sustains. Needs the local test image (infra/docker/build-test-image.sh). Results go to
bench/results/docker-<scenario>.json plus a line in bench/results/SUMMARY.md.

    .venv/bin/python bench/docker_sandbox.py latency --jobs 30
    .venv/bin/python bench/docker_sandbox.py throughput --jobs 200 --pool 8 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from xrunner.cli.bench import percentiles
from xrunner.contracts.spec import DockerWorkload, JobSpec
from xrunner.worker.sandbox import Launch
from xrunner.worker.sandbox.docker.sandbox import DockerSandbox, open_docker
from xrunner.worker.settings import WorkerSettings

RESULTS = Path(__file__).parent / "results"
T = TypeVar("T")
IMAGE = "xrunner/busybox:test"


def sandbox(base: Path, pool: int) -> DockerSandbox:
    settings = WorkerSettings(worker_id=f"bench-{uuid.uuid4().hex[:8]}", workspace_dir=str(base), docker="on",
                              warm_images=f"{IMAGE}={pool}" if pool else "")
    box = open_docker(settings, settings.worker_id)
    assert box is not None
    return box


async def one(box: DockerSandbox, base: Path) -> tuple[float, bool]:
    """One `true`: milliseconds from `start` to its exit and the end of its output, and whether it ran warm."""
    workspace = base / uuid.uuid4().hex
    workspace.mkdir()
    job = JobSpec(workload=DockerWorkload(image=IMAGE, argv=["true"]))
    began = time.perf_counter()
    proc = await box.start(Launch(workspace.name, 1, job, workspace))
    out, err, code = await asyncio.gather(proc.stdout.read(), proc.stderr.read(), proc.wait())
    took = (time.perf_counter() - began) * 1000
    assert code == 0, (code, out, err)
    return took, proc.exec_id is not None


async def ready(box: DockerSandbox, count: int) -> None:
    while len(box.pools[IMAGE].ready) < count:
        await asyncio.sleep(0.01)


async def latency(base: Path, jobs: int) -> dict[str, object]:
    """`jobs` sequential `true`s, cold (no pool) then warm (a pool of 1, refilled before each job)."""
    result: dict[str, object] = {}
    for mode, pool in (("cold", 0), ("warm", 1)):
        box = sandbox(base, pool)
        try:
            samples = []
            for i in range(jobs + 3):  # the first three warm up code paths and the daemon
                if pool:
                    await ready(box, pool)
                took, warm = await one(box, base)
                assert warm == bool(pool)
                if i >= 3:
                    samples.append(took)
        finally:
            await box.close()
        result[f"{mode}_start_to_exit_ms"] = {**percentiles(samples), "p90": p90(samples)}
    return result


async def throughput(base: Path, jobs: int, pool: int, concurrency: int) -> dict[str, object]:
    """`jobs` `true`s, `concurrency` at a time, on a warm pool of `pool` (jobs that find it empty run cold); and,
    for scale, how many bare containers a second (create, start, wait, remove) docker itself manages meanwhile."""
    box = sandbox(base, pool)
    try:
        await ready(box, pool)
        samples: list[tuple[float, bool]] = []
        wall = await lanes(jobs, concurrency, lambda: one(box, base), samples)
        await box.pools[IMAGE].close()
        bare_wall = await lanes(jobs, concurrency, lambda: bare(box), [])
    finally:
        await box.close()
    took = [t for t, _ in samples]
    return {"pool": pool, "concurrency": concurrency, "jobs_per_s": round(jobs / wall, 2), "wall_s": round(wall, 3),
            "warm_hits": sum(w for _, w in samples), "start_to_exit_ms": {**percentiles(took), "p90": p90(took)},
            "bare_docker_containers_per_s": round(jobs / bare_wall, 2)}


async def lanes(jobs: int, concurrency: int, job: Callable[[], Awaitable[T]], results: list[T]) -> float:
    """Run `jobs` jobs, `concurrency` at a time; the seconds it took."""
    queue = iter(range(jobs))

    async def lane() -> None:
        for _ in queue:
            results.append(await job())

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - began


async def bare(box: DockerSandbox) -> None:
    api = box.api
    config = api.create_host_config(network_mode="none", log_config={"Type": "none"})
    container = await box.call(api.create_container, IMAGE, ["true"], host_config=config)
    await box.call(api.start, container["Id"])
    await box.call(api.wait, container["Id"])
    await box.call(api.remove_container, container["Id"], force=True)


def p90(values: list[float]) -> float:
    return round(sorted(values)[int(0.9 * len(values))], 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["latency", "throughput"])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="xr-bench-docker-"))
    try:
        if args.scenario == "latency":
            result = asyncio.run(latency(base, args.jobs))
            name = f"docker-latency-{args.jobs}-true"
        else:
            result = asyncio.run(throughput(base, args.jobs, args.pool, args.concurrency))
            name = f"docker-throughput-{args.jobs}-true-pool{args.pool}-c{args.concurrency}"
    finally:
        shutil.rmtree(base, ignore_errors=True)
    load = os.getloadavg()[0]
    result |= {"scenario": f"docker-{args.scenario}", "jobs": args.jobs, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
               time.gmtime()), "machine": f"{os.cpu_count()} cores, load {load:.1f} at the end"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    with (RESULTS / "SUMMARY.md").open("a") as f:
        f.write(f"- `{name}`: {json.dumps(result)}\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
