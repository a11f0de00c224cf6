"""`GET /v1/jobs/{id}?as_of=SEQ|TIME` over real HTTP, NATS and Postgres: at every point of a job's history (by
sequence and by time) the answer is the lifecycle fold of the history's prefix; bad points are 400 naming `as_of`;
another tenant's job, or a job before it existed, is 404."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import pytest
from integration.gateway_app import GatewayInfra, gateway_infra, serve
from integration.test_history_export import append_jobs
from support import wait_until

from xrunner.contracts import lifecycle
from xrunner.contracts.events import ArtifactExpired, ArtifactStored, Event
from xrunner.servicekit.auth import JwtVerifier, mint
from xrunner.servicekit.ids import new_id

SECRET = "a-test-secret-of-at-least-32-bytes"


def auth(tenant: str = "acme") -> dict[str, str]:
    token = mint(SECRET, tenant=tenant, subject=f"{tenant}-user", scopes=["jobs:read"], issuer="xrunner",
                 audience="xrunner", ttl_s=600, now=int(time.time()))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def infra(fresh_nats_url: str, database_url: str) -> AsyncIterator[GatewayInfra]:
    async with gateway_infra(fresh_nats_url, database_url, "as-of") as running:
        yield running


@pytest.fixture
async def http(infra: GatewayInfra) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(infra, JwtVerifier(SECRET, issuer="xrunner", audience="xrunner")) as client:
        yield client


def folded(history: list[tuple[int, Event]]) -> object:
    """What the API must answer for a prefix: the fold, with the prefix's artifacts counted."""
    view = lifecycle.replay(history)
    assert view is not None
    view.artifacts = sum(isinstance(event, ArtifactStored) - isinstance(event, ArtifactExpired)
                         for _, event in history)
    return msgspec.to_builtins(view)


async def test_as_of_every_sequence_and_time_is_the_fold_of_the_historys_prefix(
    infra: GatewayInfra, http: httpx.AsyncClient
) -> None:
    jobs = await append_jobs(infra.store, "acme", 3)  # interleaved: most sequences belong to another job
    history = await infra.store.history("acme", jobs[1])
    last = max([(await infra.store.history("acme", job))[-1][0] for job in jobs])
    for point in range(history[0][0], last + 1):
        response = await http.get(f"/v1/jobs/{jobs[1]}", params={"as_of": point}, headers=auth())
        assert response.status_code == 200, response.text
        assert response.json() == folded([item for item in history if item[0] <= point]), point
    for i, (_, event) in enumerate(history):
        response = await http.get(f"/v1/jobs/{jobs[1]}", params={"as_of": event.occurred_at.isoformat()},
                                  headers=auth())
        assert response.json() == folded(history[: i + 1]), event

    async def live() -> object | None:
        response = await http.get(f"/v1/jobs/{jobs[1]}", headers=auth())
        return response.json() if response.json()["version"] == history[-1][0] else None

    assert (await wait_until(live, what="the read model folded the job")) == folded(history)


async def test_a_point_before_the_job_or_another_tenants_job_is_not_found(
    infra: GatewayInfra, http: httpx.AsyncClient
) -> None:
    [job] = await append_jobs(infra.store, "acme", 1)
    history = await infra.store.history("acme", job)
    before = (history[0][1].occurred_at - timedelta(seconds=1)).isoformat()
    for params, tenant in (({"as_of": history[-1][0]}, "other"), ({"as_of": before}, "acme")):
        response = await http.get(f"/v1/jobs/{job}", params=params, headers=auth(tenant))
        assert (response.status_code, response.json()["code"]) == (404, "job_not_found")


async def test_a_bad_point_is_refused_naming_the_field(infra: GatewayInfra, http: httpx.AsyncClient) -> None:
    [job] = await append_jobs(infra.store, "acme", 1)
    for bad in ("0", "-3", "yesterday", "2026-01-01T00:00:00", "1.5", "x" * 65):
        response = await http.get(f"/v1/jobs/{job}", params={"as_of": bad}, headers=auth())
        assert response.status_code == 400, (bad, response.text)
        assert "as_of" in response.text, bad


async def test_events_appended_after_a_first_as_of_are_seen_by_the_next(
    infra: GatewayInfra, http: httpx.AsyncClient
) -> None:
    job = (await append_jobs(infra.store, "acme", 2))[1]  # one that stored an artifact
    history = await infra.store.history("acme", job)
    first = await http.get(f"/v1/jobs/{job}", params={"as_of": history[-1][0]}, headers=auth())
    assert first.json()["state"] == "succeeded"
    expired = ArtifactExpired(event_id=new_id(), occurred_at=datetime.now(UTC), tenant="acme", job_id=job,
                              attempt=2, artifact_id="a1")
    appended = await infra.store.append(expired, msg_id=expired.event_id, expect=history[-1][0])
    later = await http.get(f"/v1/jobs/{job}", params={"as_of": appended.seq}, headers=auth())
    assert later.json() == folded([*history, (appended.seq, expired)])
    assert later.json()["artifacts"] == first.json()["artifacts"] - 1
