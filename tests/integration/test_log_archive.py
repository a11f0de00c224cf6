"""History that outlives the stream, against real NATS, Postgres and S3 (moto's server): archived segments round-trip
and export, `as_of` and rebuilds read them for what the stream dropped; a rebuild from a snapshot plus the log's
tail equals a full rebuild, even when the events before the snapshot are gone."""

from __future__ import annotations

import io
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from integration.gateway_app import GatewayInfra, gateway_infra, serve
from integration.test_history_export import append_jobs, folded
from integration.test_job_as_of import SECRET, auth
from integration.test_job_as_of import folded as folded_view
from moto.server import ThreadedMotoServer

from xrunner.cli import embedded
from xrunner.contracts import subjects
from xrunner.gateway.app import MIGRATIONS
from xrunner.gateway.readmodel import JobsProjection
from xrunner.servicekit import history, snapshot
from xrunner.servicekit.archive import Archive, Segment, export, read_log
from xrunner.servicekit.auth import JwtVerifier
from xrunner.servicekit.blobs import S3Blobs
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.replay import rebuild_and_compare

KEYS = {"access_key_id": "testing", "secret_access_key": "testing"}
TABLES = [("jobs", "tenant, id")]


@dataclass(frozen=True)
class S3:
    endpoint: str
    bucket: str

    def blobs(self) -> S3Blobs:
        return S3Blobs(self.bucket, endpoint_url=self.endpoint, **KEYS)


@pytest.fixture
def s3() -> Iterator[S3]:
    """Moto's S3 server over HTTP on a free port, with a bucket of this test's own (moto keeps every server's
    buckets in one process-wide backend)."""
    port = embedded.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    where = S3(f"http://127.0.0.1:{port}", f"xr-archive-{new_id()}")
    try:
        boto3.client("s3", endpoint_url=where.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=where.bucket)
        yield where
    finally:
        server.stop()


@pytest.fixture
async def infra(fresh_nats_url: str, database_url: str) -> AsyncIterator[GatewayInfra]:
    async with gateway_infra(fresh_nats_url, database_url, "archive") as running:
        yield running


async def rebuild(infra: GatewayInfra, archive: Archive | None = None,
                  from_snapshot: bool = False) -> tuple[bool, int]:
    async with infra.pool.acquire() as conn:
        result = await rebuild_and_compare(infra.js, conn, JobsProjection(), "gateway", MIGRATIONS, TABLES,
                                           archive=archive, from_snapshot=from_snapshot)
    return result.equal, result.folded


async def drop_before(infra: GatewayInfra, seq: int) -> None:
    """What `max_age` does to old events: the stream no longer holds those below `seq`."""
    await infra.js.purge_stream(subjects.EVENTS_STREAM, seq=seq)
    assert (await infra.js.stream_info(subjects.EVENTS_STREAM)).state.first_seq == seq


async def test_archived_segments_round_trip_and_readers_see_past_the_stream(infra: GatewayInfra, s3: S3) -> None:
    jobs = await append_jobs(infra.store, "acme", 6)
    await folded(infra.pool, "acme", jobs)
    everything = io.BytesIO()
    total = await history.export(infra.js, history.Filter(), everything)
    blobs = s3.blobs()
    archive = Archive(blobs, segment_events=10)
    first_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    assert await archive.archive(infra.js, cutoff=first_hour) == []  # no hour is whole before it yet

    written = await archive.archive(infra.js, cutoff=datetime.now(UTC) + timedelta(hours=2))
    assert [(s.first, s.last) for s in written] == [(s.first, s.last) for s in await archive.segments()]
    assert written[0].first == 1 and written[-1].last == total
    assert all(b.first == a.last + 1 for a, b in itertools.pairwise(written))
    assert all(s.last - s.first < 10 and Segment.parse(s.key) == s for s in written)
    assert await archive.archive(infra.js, cutoff=datetime.now(UTC) + timedelta(hours=2)) == []

    await drop_before(infra, 30)
    again = io.BytesIO()
    assert await export(infra.js, archive, history.Filter(), again) == total
    assert again.getvalue() == everything.getvalue()
    job = jobs[-1]
    whole = [seq async for seq, _ in read_log(infra.js, archive, subjects.job_history("acme", job))]
    assert whole == [seq for seq, _ in history_of(everything.getvalue(), job)]
    assert whole[0] < 30 <= whole[-1]
    assert await rebuild(infra, archive) == (True, total)
    assert (await rebuild(infra))[0] is False  # without the archive, the dropped events are missing
    await blobs.close()


def history_of(exported: bytes, job: str) -> list[tuple[int, bytes]]:
    records = [history.decode_line(line) for line in exported.splitlines()]
    return [(r.seq, bytes(r.payload)) for r in records if f".{job}." in r.subject]


async def test_a_job_as_of_an_event_the_stream_dropped_is_read_from_the_archive(infra: GatewayInfra, s3: S3) -> None:
    jobs = await append_jobs(infra.store, "acme", 3)
    job = jobs[0]
    history_before = await infra.store.history("acme", job)
    blobs = s3.blobs()
    await Archive(blobs).archive(infra.js, cutoff=datetime.now(UTC) + timedelta(hours=2))
    await blobs.close()
    await drop_before(infra, history_before[3][0])
    settings = {"archive_store": "s3", "archive_bucket": s3.bucket, "archive_s3_endpoint_url": s3.endpoint,
                **{f"archive_s3_{k}": v for k, v in KEYS.items()}}
    async with serve(infra, JwtVerifier(SECRET, issuer="xrunner", audience="xrunner"), **settings) as http:
        for i, (seq, event) in enumerate(history_before):
            for point in (seq, event.occurred_at.isoformat()):
                response = await http.get(f"/v1/jobs/{job}", params={"as_of": point}, headers=auth())
                assert response.json() == folded_view(history_before[: i + 1]), point


async def test_a_rebuild_from_a_snapshot_and_the_tail_equals_a_full_rebuild(infra: GatewayInfra) -> None:
    early = await append_jobs(infra.store, "acme", 4)
    await folded(infra.pool, "acme", early)
    async with infra.pool.acquire() as conn:
        at = await snapshot.take(conn, "gateway", JobsProjection().name)
    late = await append_jobs(infra.store, "acme", 3)
    await folded(infra.pool, "acme", early + late)
    last = (await infra.js.stream_info(subjects.EVENTS_STREAM)).state.last_seq

    assert await rebuild(infra) == (True, last)
    assert await rebuild(infra, from_snapshot=True) == (True, last - at)
    await drop_before(infra, at + 1)  # a snapshot needs nothing from before it
    assert await rebuild(infra, from_snapshot=True) == (True, last - at)
    assert (await rebuild(infra))[0] is False


async def test_a_rebuild_from_a_snapshot_that_was_never_taken_says_so(infra: GatewayInfra) -> None:
    with pytest.raises(snapshot.NoSnapshot, match="take one first"):
        await rebuild(infra, from_snapshot=True)

