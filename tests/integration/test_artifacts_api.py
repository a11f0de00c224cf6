"""The artifacts API against real NATS, Postgres and HTTP (and S3 through moto's server): lists and metadata with
tenant isolation, signed downloads without a bearer token, refused signatures, ranges, ETags, the headers of active
types, previews, retention, a rebuild of the index, and the gateway's artifact count."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import sample_files
from integration.artifacts_app import SECRET, ArtifactsService, artifacts_service, bearer, submit
from integration.gateway_app import gateway_infra, serve
from integration.test_artifacts import moto_s3, s3_client
from PIL import Image
from support import wait_until

from xrunner.artifacts.app import MIGRATIONS
from xrunner.artifacts.catalog import Catalog
from xrunner.artifacts.index import ArtifactIndex
from xrunner.artifacts.objects import LocalStore, S3Store
from xrunner.artifacts.retention import Sweeper
from xrunner.artifacts.settings import ArtifactsSettings
from xrunner.artifacts.signing import Keyring
from xrunner.contracts.events import ArtifactExpired, ArtifactStored, TenantConfigured
from xrunner.gateway.jobs import Jobs
from xrunner.gateway.readmodel import JobsTable
from xrunner.servicekit.auth import JwtVerifier
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.replay import rebuild_and_compare

__all__ = ["moto_s3"]  # the fixture, shared with test_artifacts

REPORT = b'{"loss": 0.25, "steps": [1, 2, 3]}\n'
PAGE = b"<html><script>alert(1)</script></html>\n"
DIGITS = bytes(range(48, 58)) * 10  # 100 bytes: 0123456789 ten times


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
async def local(fresh_nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[ArtifactsService]:
    async with artifacts_service(fresh_nats_url, database_url, LocalStore(tmp_path / "store")) as service:
        yield service


async def job_with_files(service: ArtifactsService, tenant: str = "acme") -> tuple[str, dict[str, Any]]:
    """A job with a JSON report, an HTML page (attempt 1) and 100 digits (attempt 2), all indexed."""
    job_id = await service.submit(tenant)
    stored = {
        "out/report.json": await service.store_artifact(tenant, job_id, "out/report.json", REPORT, "application/json"),
        "out/page.html": await service.store_artifact(tenant, job_id, "out/page.html", PAGE, "text/html"),
        "out/digits.txt": await service.store_artifact(tenant, job_id, "out/digits.txt", DIGITS, "text/plain",
                                                       attempt=2),
    }
    for event in stored.values():
        await wait_until(lambda e=event: service.indexed(e.artifact_id), what="the index")
    return job_id, stored


async def listed(service: ArtifactsService, job_id: str, tenant: str = "acme") -> dict[str, dict[str, Any]]:
    async with service.client(tenant) as client:
        answer = await client.get(f"/v1/jobs/{job_id}/artifacts")
    assert answer.status_code == 200, answer.text
    return {item["name"]: item for item in answer.json()}


async def test_a_jobs_artifacts_are_listed_with_urls_that_download_the_exact_bytes_without_a_token(
    local: ArtifactsService,
) -> None:
    job_id, stored = await job_with_files(local)
    items = await listed(local, job_id)
    assert list(items) == ["out/page.html", "out/report.json", "out/digits.txt"]  # by attempt, then name
    report = items["out/report.json"]
    assert (report["id"], report["attempt"], report["size"], report["sha256"], report["content_type"]) == (
        stored["out/report.json"].artifact_id, 1, len(REPORT), sha256(REPORT), "application/json")
    assert datetime.fromisoformat(report["url_expires_at"]) <= datetime.now(UTC) + timedelta(seconds=301)
    assert "/v1/blobs/" in report["url"] and "tenants" not in report["url"] and "store" not in report["url"]
    async with httpx.AsyncClient() as anonymous:
        for name, data in (("out/report.json", REPORT), ("out/page.html", PAGE), ("out/digits.txt", DIGITS)):
            answer = await anonymous.get(items[name]["url"])
            assert answer.status_code == 200 and sha256(answer.content) == sha256(data)
            assert answer.headers["content-length"] == str(len(data))
            assert answer.headers["x-content-type-options"] == "nosniff"
    async with local.client("acme") as client:
        second = (await client.get(f"/v1/jobs/{job_id}/artifacts", params={"attempt": 2})).json()
        one = (await client.get(f"/v1/artifacts/{report['id']}")).json()
    assert [item["name"] for item in second] == ["out/digits.txt"]
    assert one["sha256"] == sha256(REPORT) and one["url"].startswith(local.base_url)


async def test_an_active_type_is_served_as_a_sandboxed_attachment_and_an_inert_one_inline(
    local: ArtifactsService,
) -> None:
    job_id, _ = await job_with_files(local)
    items = await listed(local, job_id)
    async with httpx.AsyncClient() as anonymous:
        page = await anonymous.get(items["out/page.html"]["url"])
        report = await anonymous.get(items["out/report.json"]["url"])
    assert page.headers["content-disposition"].startswith('attachment; filename="page.html"')
    assert page.headers["content-security-policy"] == "sandbox"
    assert report.headers["content-disposition"].startswith("inline")
    assert "content-security-policy" not in report.headers


def tampered(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def flipped(sig: str) -> str:
    return sig[:5] + ("A" if sig[5] != "A" else "B") + sig[6:]


async def test_a_tampered_expired_or_foreign_key_signature_is_refused_with_403_problem_json(
    local: ArtifactsService,
) -> None:
    job_id, stored = await job_with_files(local)
    url = (await listed(local, job_id))["out/report.json"]["url"]
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    event = stored["out/report.json"]
    past = Keyring.parse(local.settings.signing_keys).sign("GET", event.key, int(time.time()) - 1, "acme")
    foreign = Keyring.parse("k2:somebody-elses-key-0123456789").sign("GET", event.key, int(time.time()) + 60, "acme")
    other_tenant = Keyring.parse(local.settings.signing_keys).sign("GET", event.key, int(time.time()) + 60, "evil")
    refusals = {
        tampered(url, sig=flipped(sig)): "signature_bad_signature",
        tampered(url, exp=str(past.expires), sig=past.sig): "signature_expired",
        tampered(url, kid="k9"): "signature_unknown_key",
        tampered(url, exp=str(foreign.expires), sig=foreign.sig): "signature_bad_signature",
        tampered(url, exp=str(other_tenant.expires), sig=other_tenant.sig): "signature_bad_signature",
        tampered(url, exp=str(int(time.time()) + 3600)): "signature_bad_signature",
        url.split("?")[0]: "signature_invalid",
    }
    async with httpx.AsyncClient() as anonymous:
        for bad, code in refusals.items():
            answer = await anonymous.get(bad)
            assert answer.status_code == 403, bad
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["code"] == code


async def test_a_url_signed_with_the_previous_key_still_downloads_until_it_expires(local: ArtifactsService) -> None:
    job_id, stored = await job_with_files(local)
    url = (await listed(local, job_id))["out/report.json"]["url"]
    assert parse_qs(urlsplit(url).query)["kid"] == ["k2"], "the first key signs"
    old = Keyring.parse("k1:first-signing-key-0123456789").sign("GET", stored["out/report.json"].key,
                                                                  int(time.time()) + 60, "acme")
    async with httpx.AsyncClient() as anonymous:
        answer = await anonymous.get(tampered(url, kid="k1", exp=str(old.expires), sig=old.sig))
    assert answer.status_code == 200 and answer.content == REPORT


async def test_another_tenants_job_or_artifact_is_not_found_and_a_job_without_artifacts_lists_none(
    local: ArtifactsService,
) -> None:
    job_id, stored = await job_with_files(local)
    empty = await local.submit("acme")
    async with local.client("evil") as evil, local.client("acme") as acme:
        assert (await evil.get(f"/v1/jobs/{job_id}/artifacts")).json()["code"] == "job_not_found"
        answer = await evil.get(f"/v1/artifacts/{stored['out/report.json'].artifact_id}")
        assert answer.status_code == 404 and answer.json()["code"] == "artifact_not_found"
        assert (await acme.get(f"/v1/jobs/{new_id().lower()}/artifacts")).status_code == 404
        assert (await acme.get(f"/v1/jobs/{empty}/artifacts")).json() == []
        assert (await acme.get(f"/v1/jobs/{job_id}/artifacts", headers={"Authorization": ""})).status_code == 401


async def test_a_range_request_returns_that_slice_and_an_unsatisfiable_one_416(local: ArtifactsService) -> None:
    job_id, _ = await job_with_files(local)
    url = (await listed(local, job_id))["out/digits.txt"]["url"]
    async with httpx.AsyncClient() as anonymous:
        middle = await anonymous.get(url, headers={"Range": "bytes=12-16"})
        tail = await anonymous.get(url, headers={"Range": "bytes=-3"})
        past = await anonymous.get(url, headers={"Range": "bytes=100-"})
    assert (middle.status_code, middle.content, middle.headers["content-range"]) == (206, DIGITS[12:17],
                                                                                     "bytes 12-16/100")
    assert (tail.status_code, tail.content) == (206, DIGITS[-3:])
    assert (past.status_code, past.headers["content-range"]) == (416, "bytes */100")


async def test_a_matching_etag_answers_304_without_a_body(local: ArtifactsService) -> None:
    job_id, _ = await job_with_files(local)
    url = (await listed(local, job_id))["out/report.json"]["url"]
    async with httpx.AsyncClient() as anonymous:
        first = await anonymous.get(url)
        again = await anonymous.get(url, headers={"If-None-Match": first.headers["etag"]})
        changed = await anonymous.get(url, headers={"If-None-Match": '"something-else"'})
    assert first.headers["etag"] == f'"{sha256(REPORT)}"'
    assert (again.status_code, again.content) == (304, b"")
    assert changed.status_code == 200


@pytest.fixture
async def previewing(fresh_nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[ArtifactsService]:
    """The local store's service with its previewer running."""
    async with artifacts_service(fresh_nats_url, database_url, LocalStore(tmp_path / "store"),
                                 previews=True) as service:
        yield service


async def test_the_previewers_previews_are_served_with_a_signed_thumbnail_url(previewing: ArtifactsService) -> None:
    job_id = await previewing.submit("acme")
    report = await previewing.store_artifact("acme", job_id, "out/report.json", REPORT, "application/json")
    plot = await previewing.store_artifact("acme", job_id, "out/plot.png", sample_files.png(800, 600), "image/png")
    for event in (report, plot):
        await wait_until(lambda e=event: previewing.previewed(e.artifact_id), timeout=60, what="the preview")
    async with previewing.client("acme") as client, httpx.AsyncClient() as anonymous:
        text = (await client.get(f"/v1/artifacts/{report.artifact_id}/preview")).json()
        image = (await client.get(f"/v1/artifacts/{plot.artifact_id}/preview")).json()
        listed_preview = (await listed(previewing, job_id))["out/report.json"]["preview"]
        thumbnail = await anonymous.get(image["thumbnail_url"])
    assert (text["kind"], json.loads(text["text"]), text["line_count"]) == ("text", json.loads(REPORT), 8)
    assert "text" not in listed_preview and listed_preview["line_count"] == 8
    assert image["kind"] == "image" and image["thumbnail_content_type"] == "image/png"
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(thumbnail.content)) as im:
        assert im.format == "PNG" and max(im.size) <= 256
    assert "thumbnail_key" not in image and "tenants/" not in image["thumbnail_url"]


async def test_an_artifact_not_yet_previewed_answers_preview_pending(local: ArtifactsService) -> None:
    _, stored = await job_with_files(local)  # no previewer runs here
    async with local.client("acme") as client:
        pending = await client.get(f"/v1/artifacts/{stored['out/page.html'].artifact_id}/preview")
    assert (pending.status_code, pending.json()["code"]) == (404, "preview_pending")


async def test_retention_removes_the_thumbnail_with_its_object(previewing: ArtifactsService, tmp_path: Path) -> None:
    job_id = await previewing.submit("acme")
    plot = await previewing.store_artifact("acme", job_id, "plot.png", sample_files.png(), "image/png", age_s=9 * 86400)
    await wait_until(lambda: previewing.previewed(plot.artifact_id), timeout=60, what="the preview")
    thumbnail = tmp_path / "store" / f"{plot.key}.preview.png"
    assert thumbnail.exists()
    assert await Sweeper(Catalog(previewing.pool), previewing.store, previewing.events, 60.0, 10).sweep(
        datetime.now(UTC)) == 1
    assert not thumbnail.exists() and not (tmp_path / "store" / plot.key).exists()


async def test_retention_removes_the_object_appends_artifact_expired_and_the_api_answers_410(
    local: ArtifactsService, tmp_path: Path
) -> None:
    configured = TenantConfigured(event_id=new_id(), occurred_at=datetime.now(UTC), tenant="shorty",
                                  artifact_ttl_s=60.0)
    await local.events.append(configured, msg_id=configured.event_id)
    job_id = await local.submit("shorty")
    old = await local.store_artifact("shorty", job_id, "old.txt", b"old\n", "text/plain", age_s=120)
    new = await local.store_artifact("shorty", job_id, "new.txt", b"new\n", "text/plain")
    kept = await local.store_artifact("acme", await local.submit("acme"), "old.txt", b"x\n", "text/plain", age_s=120)
    for event in (old, new, kept):
        await wait_until(lambda e=event: local.indexed(e.artifact_id), what="the index")
    await wait_until(lambda: local.pool.fetchval("SELECT count(*) FROM tenants WHERE tenant = 'shorty'"))
    url = (await listed(local, job_id, "shorty"))["new.txt"]["url"]
    async with local.client("shorty") as client:
        assert (await client.get(f"/v1/artifacts/{old.artifact_id}")).status_code == 410, "due is gone already"
        sweeper = Sweeper(Catalog(local.pool), local.store, local.events, 60.0, 100)
        assert await sweeper.sweep(datetime.now(UTC)) == 1
        assert await Sweeper(Catalog(local.pool), local.store, local.events, 60.0, 100).sweep(
            datetime.now(UTC)) == 0, "a second sweeper (or sweep) finds the expiry in the log"
        assert not (tmp_path / "store" / old.key).exists() and (tmp_path / "store" / new.key).exists()
        history = await local.events.history("shorty", job_id)
        assert [e.artifact_id for _, e in history if isinstance(e, ArtifactExpired)] == [old.artifact_id]
        await wait_until(lambda: local.pool.fetchval("SELECT expired_at FROM artifacts WHERE id = $1",
                                                     old.artifact_id), what="the expiry folded")
        answer = await client.get(f"/v1/artifacts/{old.artifact_id}")
        assert (answer.status_code, answer.json()["code"]) == (410, "artifact_expired")
        assert list(await listed(local, job_id, "shorty")) == ["new.txt"]
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(url)).status_code == 200


async def test_the_index_rebuilt_from_the_log_equals_the_live_one(local: ArtifactsService) -> None:
    await job_with_files(local)
    configured = TenantConfigured(event_id=new_id(), occurred_at=datetime.now(UTC), tenant="acme",
                                  artifact_ttl_s=3600.0)
    await local.events.append(configured, msg_id=configured.event_id)
    await wait_until(lambda: local.pool.fetchval("SELECT count(*) FROM tenants"), what="the tenant folded")
    async with local.pool.acquire() as conn:
        result = await rebuild_and_compare(local.js, conn, ArtifactIndex(), "artifacts", MIGRATIONS,
                                           [("artifacts", "id"), ("tenants", "tenant")])
    assert result.equal, result.report()
    assert result.tables == {"artifacts": (3, 3), "tenants": (1, 1)}


async def test_with_s3_the_urls_are_presigned_and_download_the_exact_bytes_without_a_token(
    fresh_nats_url: str, database_url: str, moto_s3: str
) -> None:
    s3 = {"artifact_store": "s3", "s3_bucket": "xr-art", "s3_endpoint_url": moto_s3, "s3_access_key_id": "testing",
          "s3_secret_access_key": "testing"}
    s3_client(moto_s3).create_bucket(Bucket="xr-art")
    store = S3Store(ArtifactsSettings(**s3))  # type: ignore[arg-type]
    async with artifacts_service(fresh_nats_url, database_url, store, **s3) as service:
        job_id, _ = await job_with_files(service)
        items = await listed(service, job_id)
        async with httpx.AsyncClient() as anonymous:
            for name, data in (("out/report.json", REPORT), ("out/page.html", PAGE)):
                answer = await anonymous.get(items[name]["url"])
                assert answer.status_code == 200 and sha256(answer.content) == sha256(data)
        query = parse_qs(urlsplit(items["out/page.html"]["url"]).query)
        assert query["response-content-disposition"][0].startswith("attachment")
        assert int(query["X-Amz-Expires"][0]) <= 300
        assert answer.headers["content-disposition"].startswith("attachment"), "page.html, as the URL overrides"
        await Sweeper(Catalog(service.pool), store, service.events, 60.0, 10).sweep(
            datetime.now(UTC) + timedelta(days=8))
        left = s3_client(moto_s3).list_objects_v2(Bucket="xr-art").get("KeyCount")
        assert left == 0, "retention removed every object"


async def test_the_gateway_counts_a_jobs_artifacts_from_the_log_until_they_expire(
    nats_url: str, database_url: str
) -> None:
    verifier = JwtVerifier(SECRET, issuer="xrunner", audience="xrunner")
    async with gateway_infra(nats_url, database_url, "gw-artifacts") as gw, serve(gw, verifier) as http:
        job_id = await submit(gw.store, "acme")
        stored = [await announce(gw.store, job_id, name) for name in ("a", "b")]
        expired = ArtifactExpired(event_id=new_id(), occurred_at=datetime.now(UTC), tenant="acme",
                                  job_id=job_id, attempt=1, artifact_id=stored[0].artifact_id)
        await gw.store.append(expired, msg_id=expired.event_id)
        await wait_until(lambda: gw.pool.fetchval("SELECT artifacts = 1 FROM jobs WHERE id = $1", job_id),
                         what="the count folded")
        view = (await http.get(f"/v1/jobs/{job_id}", headers=bearer("acme"))).json()
        from_log = await Jobs(gw.store, gw.js, gw.nc, JobsTable(gw.pool), 0.0).from_log("acme", job_id)
    assert view["artifacts"] == 1
    assert from_log is not None and from_log.artifacts == 1


async def announce(events: EventStore, job_id: str, name: str) -> ArtifactStored:
    """An `artifact.stored` event only (the gateway never reads the object)."""
    event = ArtifactStored(event_id=new_id(), occurred_at=datetime.now(UTC), tenant="acme", job_id=job_id,
                           attempt=1, artifact_id=new_id(), name=name, key=f"tenants/acme/jobs/{job_id}/1/{name}",
                           size=1, sha256="0" * 64, content_type="text/plain")
    await events.append(event, msg_id=event.event_id)
    return event
