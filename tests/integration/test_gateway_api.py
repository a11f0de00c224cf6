"""The gateway's REST API in-process against real NATS and Postgres: cancel, history, tenants, stats, explain,
dry-run, and tenant isolation. The scheduler's side is played by writing its events and KV snapshot directly.

The app is served as production serves it (servicekit's uvicorn `HttpServer`, in this test's event loop):
litestar's `AsyncTestClient` would run it in a portal thread with its own loop, where the gateway's NATS and
Postgres connections, bound to this loop, cannot be used."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from integration.gateway_app import gateway_infra, serve
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from support import wait_until

from xrunner.contracts import codec, subjects
from xrunner.contracts.events import (
    JobCancelRequested,
    JobDispatched,
    JobEvent,
    JobQueued,
    JobRetryScheduled,
    JobStarted,
    JobSucceeded,
)
from xrunner.contracts.stats import (
    STATS_GLOBAL_KEY,
    GlobalStats,
    PoolStats,
    QueuedJob,
    TenantLimits,
    TenantStats,
    tenant_stats_key,
)
from xrunner.gateway.app import read_model_projector
from xrunner.servicekit.auth import JwtVerifier, mint
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id

SECRET, ISSUER, AUDIENCE, SCHEMA = "a-test-secret-of-at-least-32-bytes", "xrunner", "xrunner", "gateway"
USER = ("jobs:read", "jobs:write")
MARKER = "secret-of-tenant-a"  # appears only in tenant A's job spec
SPEC_BODY = {"workload": {"kind": "process", "argv": ["echo", MARKER]}}


@dataclass
class Gateway:
    """The gateway app under test and the infrastructure behind it."""

    http: httpx.AsyncClient
    js: JetStreamContext
    store: EventStore

    def auth(self, tenant: str = "acme", scopes: tuple[str, ...] = USER) -> dict[str, str]:
        token = mint(SECRET, tenant=tenant, subject=f"{tenant}-user", scopes=list(scopes), issuer=ISSUER,
                     audience=AUDIENCE, ttl_s=600, now=int(time.time()))
        return {"Authorization": f"Bearer {token}"}

    async def submit(self, tenant: str = "acme") -> str:
        response = await self.http.post("/v1/jobs", json=SPEC_BODY, headers=self.auth(tenant))
        assert response.status_code == 202, response.text  # no scheduler: admission never answers
        job_id: str = response.json()["job"]["id"]
        return job_id

    async def scheduler_appends(self, tenant: str, job_id: str, *events: JobEvent) -> None:
        """Append events as their writer would: compare-and-set on the job's history."""
        for event in events:
            expect = await self.store.last_seq(tenant, job_id)
            await self.store.append(event, msg_id=f"{job_id}:{event.event_id}", expect=expect)

    async def state_is(self, tenant: str, job_id: str, state: str) -> None:
        """The job reads as `state` at its URL and in the tenant's list, which is the read model's alone: a job the
        read model has not folded yet reads from the log at its URL, and as `submitted` again once the read model
        has folded only its submission (its explain then says not_queued)."""

        async def seen() -> bool:
            response = await self.http.get(f"/v1/jobs/{job_id}", headers=self.auth(tenant))
            if response.status_code != 200 or response.json()["state"] != state:
                return False
            listed = await self.http.get("/v1/jobs", params={"state": state}, headers=self.auth(tenant))
            return any(job["id"] == job_id for job in listed.json()["jobs"])

        await wait_until(seen, what=f"job {job_id} {state}")

    async def queue(self, tenant: str = "acme") -> str:
        job_id = await self.submit(tenant)
        await self.scheduler_appends(tenant, job_id, queued(tenant, job_id))
        await self.state_is(tenant, job_id, "queued")
        return job_id

    async def publish(self, key: str, value: msgspec.Struct) -> None:
        kv = await self.js.key_value(subjects.STATS_BUCKET)
        await kv.put(key, codec.encode(value))

    async def history_types(self, tenant: str, job_id: str) -> list[str]:
        return [type(event).__name__ for _, event in await self.store.history(tenant, job_id)]


def common(tenant: str, job_id: str, attempt: int = 0) -> dict[str, Any]:
    return dict(event_id=new_id(), occurred_at=datetime.now(UTC), tenant=tenant, job_id=job_id, attempt=attempt)


def queued(tenant: str, job_id: str) -> JobQueued:
    return JobQueued(pool="default", position=1, **common(tenant, job_id))


def run_to_success(tenant: str, job_id: str) -> list[JobEvent]:
    return [
        JobDispatched(pool="default", **common(tenant, job_id, 1)),
        JobStarted(worker_id="w1", sandbox="process", **common(tenant, job_id, 1)),
        JobSucceeded(**common(tenant, job_id, 1)),
    ]


POOL = PoolStats(pool="default", workers=1, slots=4, free_slots=0, dispatched=0, running=4, queued=3,
                 oldest_wait_s=1.5, cpu_millis=4000, memory_mib=1024, gpu=0)
LIMITS = TenantLimits(max_inflight=2, max_queued=10, submit_rate_per_s=5.0)


def global_stats(tenants: list[str], **overrides: Any) -> GlobalStats:
    """What the scheduler publishes under `global`: 3 queued and 1 running in all, room for 1000."""
    fields = dict(at=datetime.now(UTC), scheduler_id="sched-1", queued=3, running=1, dispatched=0, pools=[POOL],
                  max_queued_total=1000, dispatch_p50_ms=2.0, dispatch_p99_ms=9.0, tenants=tenants)
    return GlobalStats(**{**fields, **overrides})


def tenant_stats(tenant: str, **overrides: Any) -> TenantStats:
    """What the scheduler publishes per tenant: 1 queued of 10 allowed, nothing in flight of 2, rate tokens left."""
    fields = dict(tenant=tenant, limits=LIMITS, queued=1, dispatched=0, running=0, oldest_wait_s=0.5, rate_tokens=10.0,
                  dominant_share=0.25, recent_usage=1.0, dispatch_p50_ms=None, dispatch_p99_ms=None)
    return TenantStats(**{**fields, **overrides})


@pytest.fixture
async def gw(fresh_nats_url: str, database_url: str) -> AsyncIterator[Gateway]:
    async with gateway_infra(fresh_nats_url, database_url, "gateway-test") as infra, \
            serve(infra, JwtVerifier(SECRET, issuer=ISSUER, audience=AUDIENCE)) as http:
        yield Gateway(http, infra.js, infra.store)


# --- cancel and history ---------------------------------------------------------------------------------------


async def test_cancelling_a_queued_job_twice_appends_exactly_one_cancel_request(gw: Gateway) -> None:
    job_id = await gw.queue()
    first = await gw.http.post(f"/v1/jobs/{job_id}/cancel", json={"reason": "changed my mind"}, headers=gw.auth())
    again = await gw.http.post(f"/v1/jobs/{job_id}/cancel", headers=gw.auth())
    assert (first.status_code, again.status_code) == (202, 202), (first.text, again.text)
    assert first.json()["cancel_requested"] and again.json()["cancel_requested"]
    assert first.json()["state"] == "queued"
    assert await gw.history_types("acme", job_id) == ["JobSubmitted", "JobQueued", "JobCancelRequested"]
    _, cancel = (await gw.store.history("acme", job_id))[-1]
    assert isinstance(cancel, JobCancelRequested)
    assert (cancel.requested_by, cancel.reason, cancel.attempt) == ("acme-user", "changed my mind", 0)


async def test_cancelling_a_finished_job_is_a_conflict_and_appends_nothing(gw: Gateway) -> None:
    job_id = await gw.queue()
    await gw.scheduler_appends("acme", job_id, *run_to_success("acme", job_id))
    response = await gw.http.post(f"/v1/jobs/{job_id}/cancel", headers=gw.auth())
    assert response.status_code == 409
    assert response.json()["code"] == "job_finished"
    assert "JobCancelRequested" not in await gw.history_types("acme", job_id)


async def test_cancelling_needs_the_write_scope(gw: Gateway) -> None:
    job_id = await gw.queue()
    response = await gw.http.post(f"/v1/jobs/{job_id}/cancel", headers=gw.auth(scopes=("jobs:read",)))
    assert response.status_code == 403
    assert "JobCancelRequested" not in await gw.history_types("acme", job_id)


async def test_the_events_endpoint_returns_the_jobs_history_with_increasing_sequences(gw: Gateway) -> None:
    job_id = await gw.queue()
    await gw.scheduler_appends("acme", job_id, *run_to_success("acme", job_id))
    response = await gw.http.get(f"/v1/jobs/{job_id}/events", headers=gw.auth())
    assert response.status_code == 200, response.text
    entries = response.json()
    assert [e["type"] for e in entries] == [
        "job.submitted.v1",
        "job.queued.v1",
        "job.dispatched.v1",
        "job.started.v1",
        "job.succeeded.v1",
    ]
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [e["attempt"] for e in entries] == [0, 0, 1, 1, 1]
    assert entries[3]["event"]["worker_id"] == "w1" and entries[3]["event"]["type"] == "job.started.v1"
    assert entries[0]["event"]["spec"]["workload"]["argv"] == ["echo", MARKER]


async def test_a_job_read_at_its_url_is_as_far_as_the_log_while_the_read_model_lags(
    fresh_nats_url: str, database_url: str
) -> None:
    """A client that saw `job.succeeded` on the stream and then reads the job gets it succeeded, even while the
    read model (the list) still shows it queued: the projector is stopped here once it has folded the queue."""
    async with gateway_infra(fresh_nats_url, database_url, "gateway-lag", project=False) as infra, \
            serve(infra, JwtVerifier(SECRET, issuer=ISSUER, audience=AUDIENCE)) as http:
        gw = Gateway(http, infra.js, infra.store)
        projector = asyncio.create_task(read_model_projector(infra.js, infra.pool).run())
        try:
            job_id = await gw.queue()
        finally:
            projector.cancel()
            await asyncio.gather(projector, return_exceptions=True)
        await gw.scheduler_appends("acme", job_id, *run_to_success("acme", job_id))
        response = await http.get(f"/v1/jobs/{job_id}", headers=gw.auth())
        assert (response.status_code, response.json()["state"]) == (200, "succeeded"), response.text
        listed = await http.get("/v1/jobs", params={"state": "queued"}, headers=gw.auth())
        assert [job["id"] for job in listed.json()["jobs"]] == [job_id]  # the read model did lag


# --- tenants --------------------------------------------------------------------------------------------------


async def test_an_admin_configures_a_tenant_and_reads_the_limits_back(gw: Gateway) -> None:
    admin = gw.auth("ops", ("admin",))
    body = {"weight": 2.5, "max_inflight": 3, "max_queued": 50, "submit_rate_per_s": 7.0, "artifact_ttl_s": 3600.0}
    put = await gw.http.put("/v1/tenants/acme", json=body, headers=admin)
    assert put.status_code == 200, put.text
    assert put.json() == {**body, "configured": True}
    got = await gw.http.get("/v1/tenants/acme", headers=admin)
    assert got.json() == {**body, "configured": True}
    changed = await gw.http.put("/v1/tenants/acme", json={**body, "max_inflight": 9}, headers=admin)
    assert changed.status_code == 200
    assert (await gw.http.get("/v1/tenants/acme", headers=admin)).json()["max_inflight"] == 9


async def test_an_unconfigured_tenant_has_the_schedulers_default_limits(gw: Gateway) -> None:
    admin = gw.auth("ops", ("admin",))
    assert (await gw.http.get("/v1/tenants/newco", headers=admin)).json() == msgspec.to_builtins(TenantLimits())
    defaults = TenantLimits(max_inflight=4, max_queued=40, configured=True)
    await gw.publish(STATS_GLOBAL_KEY, global_stats([], default_limits=defaults))
    got = (await gw.http.get("/v1/tenants/newco", headers=admin)).json()
    assert (got["max_inflight"], got["max_queued"], got["configured"]) == (4, 40, False)


async def test_configuring_tenants_needs_the_admin_scope_and_a_token(gw: Gateway) -> None:
    body = {"max_inflight": 1}
    for headers, status in ((gw.auth(), 403), ({}, 401), ({"Authorization": "Bearer nonsense"}, 401)):
        assert (await gw.http.put("/v1/tenants/acme", json=body, headers=headers)).status_code == status
        assert (await gw.http.get("/v1/tenants/acme", headers=headers)).status_code == status
    with pytest.raises(NotFoundError):  # nothing was appended
        await gw.js.get_last_msg(subjects.EVENTS_STREAM, subjects.tenant_events("acme", "configured"))


async def test_a_malformed_tenant_name_is_a_bad_request(gw: Gateway) -> None:
    admin = gw.auth("ops", ("admin",))
    for name in ("Acme", "-acme", "a.b", "a" * 64):
        response = await gw.http.put(f"/v1/tenants/{name}", json={}, headers=admin)
        assert response.status_code == 400, (name, response.text)
        assert response.json()["code"] == "invalid_request"


# --- stats ----------------------------------------------------------------------------------------------------


async def test_stats_before_any_snapshot_are_empty(gw: Gateway) -> None:
    response = await gw.http.get("/v1/stats", headers=gw.auth())
    assert response.status_code == 200
    assert response.json() == {"at": None, "pools": [], "tenants": [], "queued_total": 0, "running_total": 0,
                               "dispatched_total": 0, "dispatch_p50_ms": None, "dispatch_p99_ms": None}


async def test_stats_show_a_tenant_only_its_own_queue(gw: Gateway) -> None:
    await gw.publish(STATS_GLOBAL_KEY, global_stats(["acme", "globex"]))
    await gw.publish(tenant_stats_key("acme"), tenant_stats("acme"))
    await gw.publish(tenant_stats_key("globex"), tenant_stats("globex", queued=7))
    body = (await gw.http.get("/v1/stats", headers=gw.auth("acme"))).json()
    assert [t["tenant"] for t in body["tenants"]] == ["acme"]
    assert [p["pool"] for p in body["pools"]] == ["default"]
    assert (body["queued_total"], body["running_total"]) == (3, 1)
    assert (body["dispatch_p50_ms"], body["dispatch_p99_ms"]) == (2.0, 9.0)
    assert "globex" not in str(body)


async def test_stats_show_an_admin_every_tenant(gw: Gateway) -> None:
    await gw.publish(STATS_GLOBAL_KEY, global_stats(["acme", "globex", "gone"]))
    await gw.publish(tenant_stats_key("acme"), tenant_stats("acme"))
    await gw.publish(tenant_stats_key("globex"), tenant_stats("globex", queued=7))
    body = (await gw.http.get("/v1/stats", headers=gw.auth("ops", ("admin",)))).json()
    assert sorted(t["tenant"] for t in body["tenants"]) == ["acme", "globex"]
    assert body["at"] is not None


# --- explain --------------------------------------------------------------------------------------------------


async def test_explain_gives_the_schedulers_reason_for_a_job_in_its_tenants_head(gw: Gateway) -> None:
    job_id = await gw.queue()
    head = [QueuedJob(job_id=job_id, position=2, reason="no_worker_fits", pool="gpu", eta_s=None, detail="no gpu")]
    await gw.publish(STATS_GLOBAL_KEY, global_stats(["acme"]))
    await gw.publish(tenant_stats_key("acme"), tenant_stats("acme", head=head))
    body = (await gw.http.get(f"/v1/jobs/{job_id}/explain", headers=gw.auth())).json()
    assert body["reason"] == "no_worker_fits" and body["detail"] == "no gpu"
    assert (body["position"], body["pool"], body["state"]) == (2, "gpu", "queued")
    assert body["snapshot_at"] is not None


async def test_explain_derives_a_reason_for_a_job_beyond_the_head(gw: Gateway) -> None:
    job_id = await gw.queue()
    other = QueuedJob(job_id=new_id(), position=1, reason="pool_full", pool="default", eta_s=3.0)
    await gw.publish(STATS_GLOBAL_KEY, global_stats(["acme"]))
    await gw.publish(tenant_stats_key("acme"), tenant_stats("acme", head=[other], dispatched=1, running=1))
    body = (await gw.http.get(f"/v1/jobs/{job_id}/explain", headers=gw.auth())).json()
    assert (body["reason"], body["position"]) == ("tenant_at_max_inflight", None)
    assert "beyond the first 1 waiting jobs" in body["detail"]
    await gw.publish(tenant_stats_key("acme"), tenant_stats("acme", head=[other]))
    assert (await gw.http.get(f"/v1/jobs/{job_id}/explain", headers=gw.auth())).json()["reason"] == "pool_full"


async def test_explain_says_a_job_in_retry_backoff_waits_for_its_backoff(gw: Gateway) -> None:
    job_id = await gw.queue()
    later = datetime.now(UTC) + timedelta(minutes=5)
    await gw.scheduler_appends("acme", job_id, JobRetryScheduled(not_before=later, **common("acme", job_id)))
    await gw.publish(STATS_GLOBAL_KEY, global_stats(["acme"]))
    await wait_until(lambda: _explain_reason(gw, job_id, "backoff"), what="explain to see the backoff")


async def test_explain_says_a_running_job_is_not_queued(gw: Gateway) -> None:
    job_id = await gw.queue()
    await gw.scheduler_appends("acme", job_id, *run_to_success("acme", job_id)[:2])
    await gw.state_is("acme", job_id, "running")
    body = (await gw.http.get(f"/v1/jobs/{job_id}/explain", headers=gw.auth())).json()
    assert (body["reason"], body["detail"], body["state"]) == ("not_queued", "running", "running")


async def _explain_reason(gw: Gateway, job_id: str, reason: str) -> bool:
    response = await gw.http.get(f"/v1/jobs/{job_id}/explain", headers=gw.auth())
    return bool(response.status_code == 200 and response.json()["reason"] == reason)


# --- dry-run --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant_over", "global_over", "decision", "cause"),
    [
        ({"queued": 10}, {}, "rejected", "tenant_queue_full"),
        ({}, {"queued": 1000}, "rejected", "global_queue_full"),
        # an empty bucket that refills once a minute: still empty however slowly the machine reaches the dry run
        ({"rate_tokens": 0.0, "limits": TenantLimits(max_inflight=2, max_queued=10, submit_rate_per_s=1 / 60)}, {},
         "rejected", "rate_limited"),
        ({}, {}, "admitted", None),
    ],
)
async def test_a_dry_run_decides_as_admission_would_from_the_snapshot_and_appends_nothing(
    gw: Gateway, tenant_over: dict[str, Any], global_over: dict[str, Any], decision: str, cause: str | None
) -> None:
    await gw.publish(STATS_GLOBAL_KEY, global_stats(["acme"], **global_over))
    await gw.publish(tenant_stats_key("acme"), tenant_stats("acme", **tenant_over))
    response = await gw.http.post("/v1/jobs/dry-run", json=SPEC_BODY, headers=gw.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["decision"], body["cause"]) == (decision, cause)
    if decision == "admitted":
        assert (body["pool"], body["position"]) == ("default", 2)
    else:
        assert body["retry_after_s"] > 0 and body["detail"]
    info = await gw.js.stream_info(subjects.EVENTS_STREAM)
    assert info.state.messages == 0


async def test_a_dry_run_without_a_snapshot_admits_with_default_limits(gw: Gateway) -> None:
    body = {**SPEC_BODY, "resources": {"pool": "gpu"}}
    response = await gw.http.post("/v1/jobs/dry-run", json=body, headers=gw.auth())
    assert response.json()["decision"] == "admitted"
    assert (response.json()["pool"], response.json()["position"]) == ("gpu", 1)


# --- tenant isolation -----------------------------------------------------------------------------------------

CROSS_TENANT = [("GET", ""), ("GET", "/logs"), ("GET", "/events"), ("GET", "/explain"), ("POST", "/cancel")]


@pytest.mark.parametrize(("method", "suffix"), CROSS_TENANT)
async def test_another_tenants_job_looks_exactly_like_a_missing_one(gw: Gateway, method: str, suffix: str) -> None:
    job_id = await gw.queue("acme")
    await gw.publish(STATS_GLOBAL_KEY, global_stats(["acme", "globex"]))
    head = [QueuedJob(job_id=job_id, position=1, reason="pool_full", pool="default", eta_s=1.0)]
    await gw.publish(tenant_stats_key("acme"), tenant_stats("acme", head=head))
    globex = gw.auth("globex")
    theirs = await gw.http.request(method, f"/v1/jobs/{job_id}{suffix}", headers=globex)
    missing_id = new_id()
    missing = await gw.http.request(method, f"/v1/jobs/{missing_id}{suffix}", headers=globex)
    assert theirs.status_code == 404 and theirs.json()["code"] == "job_not_found"
    assert theirs.text.replace(job_id, "<id>") == missing.text.replace(missing_id, "<id>")
    assert MARKER not in theirs.text and "acme" not in theirs.text
    assert await gw.history_types("acme", job_id) == ["JobSubmitted", "JobQueued"]
