"""Previews with real scheduler, gateway, worker and artifacts processes on real NATS and Postgres: each stored
artifact gets one `artifact.previewed` (thumbnails beside the object, in a local directory or S3 through moto's
server), hostile files get none with a reason in bounded time, the consumer goes on, and the index keeps them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import sample_files
from integration.cluster import Cluster
from integration.test_artifacts import moto_s3, prefix, rebuild, run, s3_client, start
from PIL import Image
from support import wait_until

__all__ = ["moto_s3"]  # the fixture, shared with test_artifacts

NORMAL = {
    "report.json": b'{"accuracy": 0.93, "classes": ["cat", "dog"]}',
    "plot.png": sample_files.png(800, 600),
    "paper.pdf": sample_files.pdf(pages=4),
    "bundle.zip": sample_files.zip_of({"data/a.csv": b"x,y\n1,2\n", "notes.md": b"# notes\n"}),
}
HOSTILE = {
    "bomb.zip": sample_files.zip_bomb(),
    "huge.png": sample_files.png_header(20_000, 20_000),
    "long.pdf": sample_files.pdf(pages=10_000),
}
KINDS = {"report.json": "text", "plot.png": "image", "paper.pdf": "pdf", "bundle.zip": "archive", "logs.txt": "text"}


def copy_in(tmp_path: Path, files: dict[str, bytes], extra: str = "") -> str:
    """A job command that copies `files` (written under tmp_path) into its out/, says so (a job that writes nothing
    has no logs.txt) and then runs `extra`."""
    src = tmp_path / "inputs"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    return f"mkdir -p out && cp {src}/* out/ && echo copied" + (f" && {extra}" if extra else "")


async def previews_of(client: httpx.AsyncClient, job_id: str, count: int) -> dict[str, dict[str, Any]]:
    """The job's `artifact.previewed` events by artifact name, once there are `count` of them."""

    async def collected() -> dict[str, dict[str, Any]] | None:
        history = (await client.get(f"/v1/jobs/{job_id}/events")).json()
        names = {e["event"]["artifact_id"]: e["event"]["name"] for e in history if e["type"] == "artifact.stored.v1"}
        found = {names[e["event"]["artifact_id"]]: e["event"] for e in history if e["type"] == "artifact.previewed.v1"}
        return found if len(found) >= count else None

    return await wait_until(collected, timeout=60, what=f"{count} previews of job {job_id}", interval=0.2)


def small_png(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        im.load()
        assert max(im.size) <= 256
        return im.size


async def test_each_artifact_gets_its_preview_and_hostile_files_get_none_with_a_reason(
    cluster: Cluster, tmp_path: Path
) -> None:
    store = cluster.logs / "store"
    cluster.start("artifacts", "artifacts", wait=False, artifact_dir=store)
    start(cluster, artifact_dir=store)
    command = copy_in(tmp_path, NORMAL | HOSTILE, "ln -s /etc/passwd out/passwd")
    async with cluster.client("acme") as client:
        job = await run(client, command)
        assert job["state"] == "succeeded"
        previews = await previews_of(client, job["id"], len(NORMAL) + len(HOSTILE) + 1)
    assert {name: previews[f"out/{name}"]["kind"] for name in NORMAL} == {n: KINDS[n] for n in NORMAL}
    assert previews["logs.txt"]["kind"] == "text"
    assert json.loads(previews["out/report.json"]["text"]) == json.loads(NORMAL["report.json"])
    assert previews["out/paper.pdf"]["page_count"] == 4
    assert [e["name"] for e in previews["out/bundle.zip"]["entries"]] == ["data/a.csv", "notes.md"]
    for name in ("out/plot.png", "out/paper.pdf"):
        key = previews[name]["thumbnail_key"]
        assert key == f"{prefix(job)}/{name}.preview.png" and previews[name]["thumbnail_content_type"] == "image/png"
        small_png((store / key).read_bytes())
    for name in HOSTILE:
        assert previews[f"out/{name}"]["kind"] in ("none", "pdf"), name
    assert "bomb" in previews["out/bomb.zip"]["reason"] and "pixels" in previews["out/huge.png"]["reason"]
    assert previews["out/long.pdf"]["page_count"] == 10_000  # counted cheaply; only page 1 is rendered
    assert "out/passwd" not in previews
    assert b"out/passwd not kept: it links to outside the workspace" in (store / prefix(job) / "logs.txt").read_bytes()
    rows = await wait_until(lambda: _previewed_rows(cluster.database_url, job["id"], len(previews)), timeout=30,
                            what="the index to fold the previews")
    assert rows["out/plot.png"]["thumbnail_key"] == previews["out/plot.png"]["thumbnail_key"]
    same = await rebuild(cluster, "artifacts")
    assert same.returncode == 0 and "rebuild equals the live projection" in same.stdout, same.stdout + same.stderr


async def _previewed_rows(database_url: str, job_id: str, n: int) -> dict[str, dict[str, Any]] | None:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT name, preview::text AS preview FROM artifacts.artifacts"
                                " WHERE job_id = $1 AND preview IS NOT NULL", job_id)
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()
    return {r["name"]: json.loads(r["preview"]) for r in rows} if len(rows) >= n else None


async def test_with_the_s3_store_thumbnails_land_beside_their_objects_in_the_bucket(
    cluster: Cluster, moto_s3: str, tmp_path: Path
) -> None:
    s3 = s3_client(moto_s3)
    s3.create_bucket(Bucket="xr-artifacts")
    store = {"artifact_store": "s3", "s3_bucket": "xr-artifacts", "s3_endpoint_url": moto_s3,
             "s3_access_key_id": "testing", "s3_secret_access_key": "testing"}
    cluster.start("artifacts", "artifacts", wait=False, **store)
    start(cluster, **store)
    async with cluster.client("acme") as client:
        job = await run(client, copy_in(tmp_path, NORMAL))
        previews = await previews_of(client, job["id"], len(NORMAL) + 1)
    assert {name: previews[name]["kind"] for name in previews} == {
        **{f"out/{n}": KINDS[n] for n in NORMAL}, "logs.txt": "text"}
    for name in ("out/plot.png", "out/paper.pdf"):
        key = previews[name]["thumbnail_key"]
        assert key.startswith(f"tenants/acme/jobs/{job['id']}/") and key.endswith(".preview.png")
        small_png(s3.get_object(Bucket="xr-artifacts", Key=key)["Body"].read())
