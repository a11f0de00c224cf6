"""`GET /v1/jobs/{job_id}/decisions` in-process against real NATS and Postgres: a dispatched job's decisions with
their inputs and the dispatches that went before it (another tenant's shown without its name or id, except to an
admin), what is ahead of a waiting job, and 404 for another tenant's job. The scheduler's side is played by
appending its events and publishing its snapshot directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from integration.gateway_app import gateway_infra, serve
from integration.test_gateway_api import AUDIENCE, ISSUER, SECRET, Gateway, common, global_stats, tenant_stats

from xrunner.contracts.decisions import DispatchWhy, PoolFit, Standing
from xrunner.contracts.events import JobDispatched
from xrunner.contracts.stats import STATS_GLOBAL_KEY, QueuedJob, tenant_stats_key
from xrunner.servicekit.auth import SCOPES, JwtVerifier


@pytest.fixture
async def gw(fresh_nats_url: str, database_url: str) -> AsyncIterator[Gateway]:
    async with gateway_infra(fresh_nats_url, database_url, "gateway-decisions-test") as infra, \
            serve(infra, JwtVerifier(SECRET, issuer=ISSUER, audience=AUDIENCE)) as http:
        yield Gateway(http, infra.js, infra.store)


POOL = PoolFit(pool="default", workers=1, slots=2, free=1, cpu_millis=4000, memory_mib=8192, gpu=0,
               workloads=["process"], outcome="chosen", reason="free slots: 1")


def standing(tenant: str, idle: bool, share: float) -> Standing:
    return Standing(tenant=tenant, idle=idle, rank_share=share, running_share=share, usage_share=0.0, weight=1.0,
                    inflight=0 if idle else 1, max_inflight=10, queued=1)


def dispatched(tenant: str, job_id: str, tenant_standing: Standing, competing: list[Standing]) -> JobDispatched:
    why = DispatchWhy(basis=1, tenant=tenant_standing, competing=competing, pools_evaluated=1, workers_evaluated=1,
                      pools=[POOL])
    return JobDispatched(pool="default", why=why, **common(tenant, job_id, 1))


async def decisions(gw: Gateway, job_id: str, tenant: str = "acme", admin: bool = False) -> Any:
    scopes = SCOPES if admin else ("jobs:read",)
    response = await gw.http.get(f"/v1/jobs/{job_id}/decisions", headers=gw.auth(tenant, scopes))
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_dispatch_says_why_and_which_job_went_before_it_without_naming_another_tenant(gw: Gateway) -> None:
    ours = await gw.queue("acme")
    theirs = await gw.queue("globex")
    await gw.scheduler_appends("globex", theirs, dispatched("globex", theirs, standing("globex", True, 0.0),
                                                            [standing("acme", False, 0.5)]))
    await gw.scheduler_appends("acme", ours, dispatched("acme", ours, standing("acme", False, 0.5), []))
    await gw.state_is("acme", ours, "dispatched")
    body = await decisions(gw, ours)
    assert [d["kind"] for d in body["decisions"]] == ["queued", "dispatched"]
    dispatch = body["decisions"][1]
    assert dispatch["why"]["tenant"]["tenant"] == "acme" and dispatch["why"]["pools"][0]["outcome"] == "chosen"
    assert dispatch["waited_s"] >= 0 and "weighted share was 0.5000" in dispatch["summary"]
    [went] = dispatch["went_before"]
    assert (went["tenant"], went["job_id"], went["pool"]) == ("another tenant", None, "default")
    assert went["reason"] == "its tenant had nothing in flight: served first"
    assert "globex" not in str(body)
    as_admin = await decisions(gw, ours, admin=True)
    assert [(w["tenant"], w["job_id"]) for w in as_admin["decisions"][1]["went_before"]] == [("globex", theirs)]
    their_body = await decisions(gw, theirs, "globex")
    assert [c["tenant"] for c in their_body["decisions"][1]["why"]["competing"]] == ["other-1"]


async def test_a_waiting_job_says_why_and_which_of_its_tenants_jobs_are_ahead(gw: Gateway) -> None:
    first, ours = await gw.queue("acme"), await gw.queue("acme")
    head = [QueuedJob(job_id=first, position=1, reason="pool_full", pool="default", eta_s=1.0),
            QueuedJob(job_id=ours, position=2, reason="pool_full", pool="default", eta_s=2.0)]
    await gw.publish(STATS_GLOBAL_KEY, global_stats(["acme"]))
    await gw.publish(tenant_stats_key("acme"), tenant_stats("acme", head=head))
    body = await decisions(gw, ours)
    assert (body["state"], body["waiting_reason"], body["position"]) == ("queued", "pool_full", 2)
    assert [(a["job_id"], a["position"]) for a in body["ahead"]] == [(first, 1)]


async def test_another_tenants_job_is_not_found(gw: Gateway) -> None:
    job_id = await gw.queue("acme")
    response = await gw.http.get(f"/v1/jobs/{job_id}/decisions", headers=gw.auth("globex"))
    assert (response.status_code, response.json()["code"]) == (404, "job_not_found")
