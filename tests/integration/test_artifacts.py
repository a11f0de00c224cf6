"""Artifacts with real scheduler, gateway, worker and artifacts processes: the files a job's globs select and its
whole log reach the object store (a local directory, or S3 through moto's server) and are announced in its history."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx
import pytest
from integration.cluster import Cluster
from moto.server import ThreadedMotoServer
from support import W0, wait_until

from xrunner.cli import embedded

TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "expired", "rejected"}
A_TXT = b"alpha artifact\n"
B_BIN = b"\x00\x01\xffbinary\x7f\n"
WRITE_BOTH = (
    "mkdir -p out/sub && printf 'alpha artifact\\n' > out/a.txt"
    " && printf '\\000\\001\\377binary\\177\\n' > out/sub/b.bin"
    " && echo written"  # a job that writes nothing has no logs.txt
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def start(cluster: Cluster, *, artifacts_service: bool = False, **worker: object) -> None:
    """Scheduler, gateway and one unsandboxed worker (plus the artifacts index when asked), all ready."""
    cluster.start("scheduler", "scheduler", wait=False, tick_s=0.1)
    cluster.start("gateway", "gateway", wait=False)
    if artifacts_service:
        same_store = {k: v for k, v in worker.items() if k == "artifact_store" or k.startswith(("artifact_dir", "s3_"))}
        cluster.start("artifacts", "artifacts", wait=False, **same_store)
    settings = {"sandbox": "none", "workspace_dir": cluster.logs / "workspaces", **worker}
    cluster.start("worker", "worker", wait=False, worker_id=W0, **settings)
    for name in list(cluster.procs):
        cluster.wait_ready(name)


async def run(client: httpx.AsyncClient, cmd: str, **spec: object) -> dict[str, Any]:
    """Submit `sh -c cmd` and return the job once it has ended."""
    body = {"workload": {"kind": "process", "argv": ["sh", "-c", cmd]}, **spec}
    response = await client.post("/v1/jobs", json=body)
    assert response.status_code in (201, 202), response.text
    job_id = response.json()["job"]["id"]

    async def ended() -> dict[str, Any] | None:
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        return job if job["state"] in TERMINAL else None

    return await wait_until(ended, timeout=20, what=f"job {job_id} to end")


async def stored(client: httpx.AsyncClient, job_id: str) -> dict[str, dict[str, Any]]:
    """The job's `artifact.stored` events by artifact name."""
    history = (await client.get(f"/v1/jobs/{job_id}/events")).json()
    return {e["event"]["name"]: e["event"] for e in history if e["type"] == "artifact.stored.v1"}


def prefix(job: dict[str, Any]) -> str:
    return f"tenants/acme/jobs/{job['id']}/1"


async def test_files_the_globs_select_are_stored_under_the_attempts_keys_and_announced_before_the_outcome(
    cluster: Cluster,
) -> None:
    store = cluster.logs / "store"
    start(cluster, artifacts_service=True, artifact_dir=store)
    async with cluster.client("acme") as client:
        job = await run(client, WRITE_BOTH)
        assert job["state"] == "succeeded"
        events = await stored(client, job["id"])
        history = (await client.get(f"/v1/jobs/{job['id']}/events")).json()
    for name, data, kind in (("out/a.txt", A_TXT, "text/plain"), ("out/sub/b.bin", B_BIN, "application/octet-stream")):
        key = f"{prefix(job)}/{name}"
        assert (store / key).read_bytes() == data
        assert (events[name]["key"], events[name]["size"], events[name]["sha256"]) == (key, len(data), sha256(data))
        assert events[name]["content_type"] == kind
    types = [e["type"] for e in history]
    assert types.index("job.succeeded.v1") > max(i for i, t in enumerate(types) if t == "artifact.stored.v1")
    rows = await wait_until(lambda: _indexed(cluster.database_url, job["id"], 3), timeout=15, what="the index")
    assert {r["name"]: r["sha256"] for r in rows}["out/sub/b.bin"] == sha256(B_BIN)


async def _indexed(database_url: str, job_id: str, n: int, previewed: bool = False) -> list[asyncpg.Record] | None:
    """The job's index rows once there are `n` (with their previews folded, when `previewed`)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT name, key, size, sha256 FROM artifacts.artifacts WHERE job_id = $1"
                                + (" AND preview IS NOT NULL" if previewed else ""), job_id)
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()
    return rows if len(rows) >= n else None


async def test_the_artifact_index_rebuilt_from_the_log_equals_the_live_one_and_a_damaged_one_does_not(
    cluster: Cluster,
) -> None:
    start(cluster, artifacts_service=True, artifact_dir=cluster.logs / "store")
    async with cluster.client("acme") as client:
        job = await run(client, WRITE_BOTH)
    # the previews are appended after the artifacts: the live index must have folded them too before comparing
    await wait_until(lambda: _indexed(cluster.database_url, job["id"], 3, previewed=True), timeout=30,
                     what="the index")
    same = await rebuild(cluster, "artifacts")
    assert same.returncode == 0 and "rebuild equals the live projection" in same.stdout, same.stdout + same.stderr
    conn = await asyncpg.connect(cluster.database_url)
    try:
        await conn.execute("DELETE FROM artifacts.artifacts WHERE name = 'out/a.txt'")
    finally:
        await conn.close()
    damaged = await rebuild(cluster, "artifacts")
    assert damaged.returncode == 1, damaged.stdout + damaged.stderr
    assert "artifacts: 2 live vs 3 rebuilt rows" in damaged.stdout


async def rebuild(cluster: Cluster, service: str) -> subprocess.CompletedProcess[str]:
    """`xrunner projections rebuild SERVICE` against the cluster's NATS and database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
    env |= {"XR_NATS_URL": cluster.nats_url, "XR_DATABASE_URL": cluster.database_url}
    command = [sys.executable, "-m", "xrunner.cli", "projections", "rebuild", service, "--data-dir", str(cluster.logs)]
    return await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=120)


async def test_the_cli_lists_a_jobs_artifacts_and_downloads_one_through_its_signed_url_checking_its_sha256(
    cluster: Cluster, tmp_path: Path
) -> None:
    start(cluster, artifacts_service=True, artifact_dir=cluster.logs / "store")
    async with cluster.client("acme") as client:
        job = await run(client, WRITE_BOTH)

        async def counted() -> dict[str, Any] | None:
            view: dict[str, Any] = (await client.get(f"/v1/jobs/{job['id']}")).json()
            return view if view["artifacts"] == 3 else None

        await wait_until(counted, timeout=15, what="the gateway to count out/a.txt, out/sub/b.bin and logs.txt")
        token = client.headers["Authorization"].removeprefix("Bearer ")
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
    env |= {"XR_API_URL": cluster.api(), "XR_TOKEN": token, "XR_ARTIFACTS_URL": cluster.api("artifacts"),
            "COLUMNS": "200"}
    listed = await cli(env, "artifacts", job["id"], "--json")
    assert sorted(item["name"] for item in json.loads(listed.stdout)) == ["logs.txt", "out/a.txt", "out/sub/b.bin"]
    table = await cli(env, "artifacts", job["id"])
    assert "out/sub/b.bin" in table.stdout
    got = await cli(env, "artifacts", "get", job["id"], "out/sub/b.bin", "-o", str(tmp_path / "b.bin"))
    assert (tmp_path / "b.bin").read_bytes() == B_BIN and "checked" in got.stderr
    missing = await cli(env, "artifacts", "get", job["id"], "out/nope", check=False)
    assert missing.returncode == 2 and "no artifact named 'out/nope'" in missing.stderr


async def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "xrunner.cli", *args]
    done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=60)
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


async def test_the_whole_log_is_stored_as_logs_txt_when_the_job_ends(cluster: Cluster) -> None:
    store = cluster.logs / "store"
    start(cluster, artifact_dir=store)
    async with cluster.client("acme") as client:
        job = await run(client, "for i in 1 2 3; do echo line $i; done; echo oops >&2; exit 3")
        events = await stored(client, job["id"])
    assert job["state"] == "failed"
    log = (store / prefix(job) / "logs.txt").read_bytes()
    assert b"line 1\nline 2\nline 3\n" in log and b"oops\n" in log
    assert (events["logs.txt"]["size"], events["logs.txt"]["sha256"]) == (len(log), sha256(log))
    assert events["logs.txt"]["content_type"] == "text/plain"

    def left() -> list[Path]:  # removed off the worker's loop, soon after the outcome
        return list((cluster.logs / "workspaces" / W0).iterdir())

    await wait_until(lambda: not left(), timeout=10, what="the job's workspace and log spool to be removed")


async def test_a_worker_started_again_under_its_id_removes_what_its_previous_life_left_in_its_workspaces(
    cluster: Cluster,
) -> None:
    """What a worker that died left in its workspaces (an attempt's folder and log spool) is gone once a worker of
    its id is ready again; another worker's workspaces are not touched."""
    mine, other = cluster.logs / "workspaces" / W0, cluster.logs / "workspaces" / "another-worker"
    for folder in (mine, other):
        (folder / "01dead-1" / "out").mkdir(parents=True)
        (folder / "01dead-1" / "out" / "partial.csv").write_text("a,b\n")
        (folder / "01dead-1.log").write_bytes(b"line\n")
    start(cluster)
    assert list(mine.iterdir()) == []  # removed before the worker serves /readyz
    assert sorted(p.name for p in other.iterdir()) == ["01dead-1", "01dead-1.log"]
    async with cluster.client("acme") as client:
        assert (await run(client, "echo still works"))["state"] == "succeeded"


async def test_a_file_outside_the_globs_is_not_uploaded(cluster: Cluster) -> None:
    store = cluster.logs / "store"
    start(cluster, artifact_dir=store)
    async with cluster.client("acme") as client:
        job = await run(client, f"{WRITE_BOTH} && echo secret > notes.txt", artifacts={"globs": ["out/*.txt"]})
        events = await stored(client, job["id"])
    assert sorted(events) == ["logs.txt", "out/a.txt"]
    assert sorted(p.name for p in (store / prefix(job)).rglob("*") if p.is_file()) == ["a.txt", "logs.txt"]


async def test_a_job_that_wrote_nothing_stores_no_log_and_announces_nothing(cluster: Cluster) -> None:
    store = cluster.logs / "store"
    start(cluster, artifact_dir=store)
    async with cluster.client("acme") as client:
        silent = await run(client, "true")
        spoke = await run(client, "echo hi")
        assert (await stored(client, silent["id"]), silent["artifacts"]) == ({}, 0)
        assert list(await stored(client, spoke["id"])) == ["logs.txt"]
    assert not (store / prefix(silent)).exists()
    assert (store / prefix(spoke) / "logs.txt").read_bytes() == b"hi\n"


async def test_a_symlink_pointing_outside_the_workspace_is_not_followed(cluster: Cluster, tmp_path: Path) -> None:
    store, secret = cluster.logs / "store", tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    start(cluster, artifact_dir=store)
    links = f"mkdir -p out && ln -s {secret} out/leak.txt && ln -s {tmp_path} out/dir && ln -s a.txt out/b.txt"
    cmd = f"{links} && {WRITE_BOTH}"
    async with cluster.client("acme") as client:
        job = await run(client, cmd)
        events = await stored(client, job["id"])
    assert "out/leak.txt" not in events and not any(name.startswith("out/dir") for name in events)
    assert events["out/b.txt"]["sha256"] == sha256(A_TXT), "a link inside the workspace is kept as its target"
    assert b"host secret" not in b"".join(p.read_bytes() for p in store.rglob("*") if p.is_file() and "out" in p.parts)
    assert b"out/leak.txt not kept" in (store / prefix(job) / "logs.txt").read_bytes()


async def test_a_file_over_the_size_limit_is_skipped_with_a_line_in_the_log(cluster: Cluster) -> None:
    store = cluster.logs / "store"
    start(cluster, artifact_dir=store, max_artifact_bytes=len(A_TXT))
    async with cluster.client("acme") as client:
        job = await run(client, f"{WRITE_BOTH} && head -c 100 /dev/zero > out/big.dat")
        events = await stored(client, job["id"])
    assert job["state"] == "succeeded"
    assert sorted(events) == ["logs.txt", "out/a.txt", "out/sub/b.bin"]
    assert b"out/big.dat not kept" in (store / prefix(job) / "logs.txt").read_bytes()


@pytest.fixture
def moto_s3() -> Iterator[str]:
    """Moto's S3 server over HTTP on a free port: the closest real-protocol stand-in for S3."""
    port = embedded.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


async def test_with_the_s3_store_artifacts_land_in_the_bucket_with_their_sha256(
    cluster: Cluster, moto_s3: str
) -> None:
    s3 = s3_client(moto_s3)
    s3.create_bucket(Bucket="xr-artifacts")
    start(cluster, artifact_store="s3", s3_bucket="xr-artifacts", s3_endpoint_url=moto_s3,
          s3_access_key_id="testing", s3_secret_access_key="testing")
    async with cluster.client("acme") as client:
        job = await run(client, f"{WRITE_BOTH} && echo done")
        events = await stored(client, job["id"])
    obj = s3.get_object(Bucket="xr-artifacts", Key=f"{prefix(job)}/out/sub/b.bin")
    assert sha256(obj["Body"].read()) == sha256(B_BIN) == events["out/sub/b.bin"]["sha256"]
    assert obj["ContentType"] == "application/octet-stream"
    log = s3.get_object(Bucket="xr-artifacts", Key=f"{prefix(job)}/logs.txt")["Body"].read()
    assert log == b"written\ndone\n" and events["logs.txt"]["sha256"] == sha256(log)
