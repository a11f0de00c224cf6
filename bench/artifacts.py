"""The artifact service alone: signing a URL, listing a job's 100 artifacts, and serving a 1 GiB file from the
local store (throughput on loopback, and the service's RSS while it streams).

A private nats-server and Postgres; the harness appends `job.submitted` and `artifact.stored` events as the gateway
and worker would, then starts `python -m xrunner.artifacts` as its own process and talks to it over HTTP.
The 1 GiB file is sparse (no disk I/O): what is measured is the service's path from file to socket.

    .venv/bin/python bench/artifacts.py                       # all three
    .venv/bin/python bench/artifacts.py --sign 20000 --lists 500 --gib 1

Results go to bench/results/artifacts.json and a line in bench/results/SUMMARY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

from xrunner.artifacts.catalog import Artifact
from xrunner.artifacts.objects import LocalStore, S3Store
from xrunner.artifacts.settings import ArtifactsSettings
from xrunner.artifacts.signer import Signer
from xrunner.artifacts.signing import Keyring
from xrunner.cli import embedded
from xrunner.cli.bench import percentiles
from xrunner.contracts.events import ArtifactStored, JobSubmitted
from xrunner.contracts.spec import JobSpec, ProcessWorkload
from xrunner.servicekit import streams
from xrunner.servicekit.auth import mint
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id

RESULTS = Path(__file__).parent / "results"
SECRET = "bench-artifacts-secret-of-32-bytes!"
TENANT = "bench"
GIB = 1024**3


def sample_artifact(key: str, size: int = 1234) -> Artifact:
    now = datetime.now(UTC)
    return Artifact(id=new_id(), tenant=TENANT, job_id="j", attempt=1, name="out/report.json", key=key, size=size,
                    sha256="0" * 64, content_type="application/json", stored_at=now, expires_at=now,
                    expired_at=None, preview=None)


async def signing(n: int) -> dict[str, Any]:
    """Per-URL time of the local store's HMAC signature and of an S3 presign (both local computations)."""
    key = f"tenants/{TENANT}/jobs/j/1/out/report.json"
    artifact = sample_artifact(key)
    local = Signer(Keyring.parse("k1:bench-signing-key-0123456789"), LocalStore("/nonexistent"), "local",
                   "http://127.0.0.1:1")
    s3_settings = ArtifactsSettings(artifact_store="s3", s3_bucket="b", s3_endpoint_url="http://127.0.0.1:1",
                                    s3_access_key_id="k", s3_secret_access_key="s")
    s3_store = S3Store(s3_settings)
    s3 = Signer(local.keyring, s3_store, "s3", "")
    result: dict[str, Any] = {}
    for name, signer in (("local", local), ("s3", s3)):
        await signer.download(artifact, time.time())  # warm up (the S3 client is created on first use)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            await signer.download(artifact, time.time())
            times.append((time.perf_counter() - start) * 1000)
        result[name] = percentiles(times)
    await s3_store.close()
    return {"urls": n, "ms": result}


class Stack:
    """nats-server, Postgres and one artifacts service process, all private to the bench."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.nats_port, self.pg_port, self.http_port = (embedded.free_port() for _ in range(3))
        self.nats = embedded.start_nats(base / "nats", self.nats_port, log_file=base / "nats.log")
        self.pg = embedded.start_postgres(base / "pg", self.pg_port, log_file=base / "pg.log", fast=True)
        embedded.create_database("127.0.0.1", self.pg_port, "bench")
        self.store = base / "store"
        self.url = f"http://127.0.0.1:{self.http_port}"

    def start_service(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
        env |= {"XR_NATS_URL": f"nats://127.0.0.1:{self.nats_port}", "XR_JWT_SECRET": SECRET,
                "XR_DATABASE_URL": embedded.database_url("127.0.0.1", self.pg_port, "bench"),
                "XR_ARTIFACTS_HTTP_PORT": str(self.http_port), "XR_ARTIFACTS_ARTIFACT_DIR": str(self.store)}
        self.service = embedded.spawn([sys.executable, "-m", "xrunner.artifacts"], self.base / "artifacts.log",
                                      env=env)
        deadline = time.monotonic() + 60
        while not _ready(f"{self.url}/readyz"):
            if time.monotonic() > deadline or self.service.poll() is not None:
                raise RuntimeError((self.base / "artifacts.log").read_text()[-2000:])
            time.sleep(0.1)

    def stop(self) -> None:
        embedded.stop(self.service)
        embedded.stop(self.pg, sig=signal.SIGINT)
        embedded.stop(self.nats)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


async def seed(stack: Stack, count: int, gib: int) -> tuple[str, str]:
    """A job with `count` small artifacts, and one with a sparse `gib` GiB file; returns both job ids."""
    nc = await streams.connect(f"nats://127.0.0.1:{stack.nats_port}", "bench-artifacts")
    events = EventStore(nc.jetstream())
    await streams.declare(nc.jetstream())
    jobs = []
    small = [(f"out/file-{i:03}.txt", b"x" * 100, 100) for i in range(count)]
    for files in (small, [("out/big.bin", None, gib * GIB)]):
        job_id = new_id()
        submitted = JobSubmitted(event_id=new_id(), occurred_at=datetime.now(UTC), tenant=TENANT, job_id=job_id,
                                 spec=JobSpec(workload=ProcessWorkload(argv=["true"])))
        await events.append(submitted, msg_id=job_id)
        for name, data, size in files:
            key = f"tenants/{TENANT}/jobs/{job_id}/1/{name}"
            path = stack.store / key
            path.parent.mkdir(parents=True, exist_ok=True)
            digest = _write(path, data, size)
            await events.append(ArtifactStored(event_id=new_id(), occurred_at=datetime.now(UTC), tenant=TENANT,
                                               job_id=job_id, attempt=1, artifact_id=new_id(), name=name, key=key,
                                               size=size, sha256=digest, content_type="application/octet-stream"),
                                msg_id=new_id())
        jobs.append(job_id)
    await nc.close()
    return jobs[0], jobs[1]


def _write(path: Path, data: bytes | None, size: int) -> str:
    if data is not None:
        path.write_bytes(data)
        return hashlib.sha256(data).hexdigest()
    with path.open("wb") as out:
        out.truncate(size)
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def headers() -> dict[str, str]:
    token = mint(SECRET, tenant=TENANT, subject="bench", scopes=["jobs:read"], issuer="xrunner", audience="xrunner",
                 ttl_s=3600, now=int(time.time()))
    return {"Authorization": f"Bearer {token}"}


def listing(stack: Stack, job_id: str, count: int, n: int) -> dict[str, Any]:
    with httpx.Client(base_url=stack.url, headers=headers(), timeout=30) as client:
        deadline = time.monotonic() + 60
        while len(client.get(f"/v1/jobs/{job_id}/artifacts").json()) < count:  # the index folds the events
            if time.monotonic() > deadline:
                raise RuntimeError("the index did not fold the artifacts")
            time.sleep(0.1)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            answer = client.get(f"/v1/jobs/{job_id}/artifacts")
            times.append((time.perf_counter() - start) * 1000)
            assert answer.status_code == 200 and len(answer.json()) == count
    return {"artifacts": count, "lists": n, "ms": percentiles(times)}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def download(stack: Stack, job_id: str) -> dict[str, Any]:
    """Stream the big file through its signed URL, sampling the service's RSS meanwhile."""
    with httpx.Client(base_url=stack.url, headers=headers(), timeout=60) as client:
        while not (items := client.get(f"/v1/jobs/{job_id}/artifacts").json()):
            time.sleep(0.1)
    item = items[0]
    samples: list[float] = [rss_mib(stack.service.pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            samples.append(rss_mib(stack.service.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    digest, received = hashlib.sha256(), 0
    start = time.perf_counter()
    with httpx.stream("GET", item["url"], timeout=120) as answer:
        for chunk in answer.iter_bytes(1024 * 1024):
            digest.update(chunk)
            received += len(chunk)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    assert received == item["size"] and digest.hexdigest() == item["sha256"]
    return {"bytes": received, "seconds": round(seconds, 3), "mb_per_s": round(received / seconds / 1e6, 1),
            "rss_mib_before": round(samples[0], 1), "rss_mib_max": round(max(samples), 1),
            "note": "the client hashes what it receives (sha256 on the same 2 cores), so this is a lower bound"}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sign", type=int, default=20_000)
    parser.add_argument("--lists", type=int, default=500)
    parser.add_argument("--gib", type=int, default=1)
    args = parser.parse_args()
    result: dict[str, Any] = {"signing": await signing(args.sign)}
    with tempfile.TemporaryDirectory(prefix="xr-bench-artifacts-") as tmp:
        stack = Stack(Path(tmp))
        try:
            small, big = await seed(stack, 100, args.gib)
            stack.start_service()
            result["listing"] = listing(stack, small, 100, args.lists)
            result["download"] = download(stack, big)
        finally:
            stack.stop()
    result |= {"scenario": "artifacts", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": f"{os.cpu_count()} cores", "load_avg_1m": os.getloadavg()[0]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "artifacts.json").write_text(json.dumps(result, indent=2) + "\n")
    with (RESULTS / "SUMMARY.md").open("a") as f:
        f.write(f"- `artifacts`: {msgspec.json.encode(result).decode()}\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
