"""The gateway's HTTP contract over real HTTP on real NATS and Postgres: schemathesis against the served OpenAPI
document, idempotent submits, and the edge limits (body size, per-tenant request rate, CORS).

schemathesis is synchronous (requests); it runs in a worker thread so that this test's event loop, which serves the
app and owns its NATS and Postgres connections, keeps serving meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from integration.gateway_app import GatewayInfra, gateway_infra, serve
from nats.js import JetStreamContext
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)

from xrunner.contracts import subjects
from xrunner.contracts.events import JobSubmitted
from xrunner.servicekit.auth import JwtVerifier, mint
from xrunner.servicekit.eventstore import EventStore

SECRET, ISSUER, AUDIENCE, SCHEMA = "a-test-secret-of-at-least-32-bytes", "xrunner", "xrunner", "gateway"
MAX_BODY = 65_536
SPEC_BODY = {"workload": {"kind": "process", "argv": ["echo", "hi"]}}
EXAMPLES_PER_OPERATION = 25
CHECKS = {
    GenerationMode.POSITIVE: [not_a_server_error, response_schema_conformance, content_type_conformance],
    GenerationMode.NEGATIVE: [not_a_server_error, response_schema_conformance, negative_data_rejection],
}


def auth(tenant: str = "acme", scopes: Sequence[str] = ("jobs:read", "jobs:write")) -> dict[str, str]:
    token = mint(SECRET, tenant=tenant, subject=f"{tenant}-user", scopes=list(scopes), issuer=ISSUER,
                 audience=AUDIENCE, ttl_s=600, now=int(time.time()))
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Infra:
    """What a gateway app needs, connected in this test's event loop."""

    gateway: GatewayInfra
    verifier: JwtVerifier

    @property
    def store(self) -> EventStore:
        return self.gateway.store

    @property
    def js(self) -> JetStreamContext:
        return self.gateway.js

    @contextlib.asynccontextmanager
    async def serve(self, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
        """Serve a gateway app over real HTTP (uvicorn, as production does) and yield a client for it; `settings`
        are GatewaySettings' (e.g. the request rate)."""
        async with serve(self.gateway, self.verifier, max_body_bytes=MAX_BODY,
                         ticket_secret="contract-test-ticket-secret-32-bytes!", **settings) as http:
            yield http


@pytest.fixture
async def infra(fresh_nats_url: str, database_url: str) -> AsyncIterator[Infra]:
    async with gateway_infra(fresh_nats_url, database_url, "gateway-contract-test") as gateway:
        yield Infra(gateway, JwtVerifier(SECRET, issuer=ISSUER, audience=AUDIENCE))


# --- schemathesis -----------------------------------------------------------------------------------------------


Operation = APIOperation[Any, Any, Any, Any]


def fuzz_operation(operation: Operation, mode: GenerationMode, base_url: str, headers: dict[str, str]) -> None:
    """Up to EXAMPLES_PER_OPERATION generated requests for one operation; raises on the first failed check."""

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case[Any]) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS[mode], timeout=10)

    run()


def fuzz_api(base_url: str, headers: dict[str, str]) -> list[str]:
    """Every operation of the served OpenAPI document in both generation modes; the failures' reports."""
    schema = schemathesis.openapi.from_url(f"{base_url}/schema/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise result.err()  # the served document has an operation schemathesis cannot read
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_operation(operation, mode, base_url, headers)
            except Unsatisfiable:  # no parameters and no body: nothing to make invalid
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # every operation's failure is reported, not only the first
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    return failures


@pytest.mark.timeout(600)  # the generated requests grow with the API; on a loaded machine they take minutes
async def test_the_served_openapi_document_holds_for_generated_requests(infra: Infra) -> None:
    async with infra.serve() as http:
        failures = await asyncio.to_thread(fuzz_api, str(http.base_url).rstrip("/"), auth("ops", ("admin",)))
        assert not failures, "\n\n".join(failures)
    assert (await infra.js.stream_info(subjects.EVENTS_STREAM)).state.messages > 0  # valid submits got through


# --- idempotency ------------------------------------------------------------------------------------------------


async def submitted_with_key(infra: Infra, tenant: str, key: str) -> list[str]:
    """The job ids of every `job.submitted` in the log for `tenant` under idempotency key `key`."""
    return [event.job_id async for _, event in infra.store.read(subjects.job_events(tenant, "*", "submitted"))
            if isinstance(event, JobSubmitted) and event.idempotency_key == key]


async def test_the_same_idempotency_key_twice_in_a_row_submits_one_job(infra: Infra) -> None:
    async with infra.serve() as http:
        headers = {**auth(), "Idempotency-Key": "nightly-2026-11-29"}
        first = await http.post("/v1/jobs", json=SPEC_BODY, headers=headers)
        again = await http.post("/v1/jobs", json=SPEC_BODY, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202), (first.text, again.text)
    assert first.json()["job"]["id"] == again.json()["job"]["id"]
    assert (first.json()["created"], again.json()["created"]) == (True, False)
    assert await submitted_with_key(infra, "acme", "nightly-2026-11-29") == [first.json()["job"]["id"]]


async def test_the_same_idempotency_key_ten_times_concurrently_submits_one_job(infra: Infra) -> None:
    async with infra.serve() as http:
        headers = {**auth(), "Idempotency-Key": "burst"}
        answers = await asyncio.gather(*(http.post("/v1/jobs", json=SPEC_BODY, headers=headers) for _ in range(10)))
        theirs = {**auth("globex"), "Idempotency-Key": "burst"}
        other_tenant = await http.post("/v1/jobs", json=SPEC_BODY, headers=theirs)
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    ids = {a.json()["job"]["id"] for a in answers}
    assert len(ids) == 1
    assert sum(a.json()["created"] for a in answers) == 1
    assert await submitted_with_key(infra, "acme", "burst") == list(ids)
    assert other_tenant.json()["job"]["id"] not in ids  # a key is scoped to its tenant


# --- edge limits ------------------------------------------------------------------------------------------------


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"], body["type"]) == (status, code, f"https://xrunner.dev/problems/{code}")
    assert body["title"]
    return body


async def test_a_body_over_the_limit_is_payload_too_large_and_submits_nothing(infra: Infra) -> None:
    big = {"workload": {"kind": "process", "argv": ["echo", "x" * MAX_BODY]}}

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    async with infra.serve() as http:
        announced = await http.post("/v1/jobs", json=big, headers=auth())
        json_type = {**auth(), "Content-Type": "application/json"}
        streamed = await http.post("/v1/jobs", content=chunked(), headers=json_type)
    assert_problem(announced, 413, "payload_too_large")
    assert_problem(streamed, 413, "payload_too_large")
    assert (await infra.js.stream_info(subjects.EVENTS_STREAM)).state.messages == 0


async def test_a_body_that_is_not_json_is_an_unsupported_media_type(infra: Infra) -> None:
    async with infra.serve() as http:
        response = await http.post("/v1/jobs", content=json.dumps(SPEC_BODY),
                                   headers={**auth(), "Content-Type": "text/plain"})
        vendor_json = await http.post("/v1/jobs/dry-run", content=json.dumps(SPEC_BODY),
                                      headers={**auth(), "Content-Type": "application/vnd.xrunner+json"})
    assert assert_problem(response, 415, "unsupported_media_type")["detail"] == "text/plain"
    assert vendor_json.status_code == 200, vendor_json.text


async def test_an_invalid_body_is_a_bad_request_naming_the_field(infra: Infra) -> None:
    async with infra.serve() as http:
        response = await http.post("/v1/jobs", json={"workload": {"kind": "process", "argv": "echo"}}, headers=auth())
    body = assert_problem(response, 400, "invalid_request")
    assert body["field"].startswith("$.workload"), body


async def test_a_tenant_over_its_request_rate_gets_429_while_another_tenant_does_not(infra: Infra) -> None:
    async with infra.serve(request_rate_per_s=0.5, request_burst=3) as http:
        allowed = [await http.get("/v1/whoami", headers=auth("acme")) for _ in range(3)]
        limited = await http.get("/v1/whoami", headers=auth("acme"))
        others = [await http.get("/v1/whoami", headers=auth("globex")) for _ in range(3)]
        health = [await http.get(path) for path in ("/healthz", "/readyz", "/metrics") * 3]
    assert [r.status_code for r in allowed] == [200, 200, 200]
    body = assert_problem(limited, 429, "rate_limited")
    assert 0 < body["retry_after_s"] <= 2.0
    assert limited.headers["Retry-After"] == str(math.ceil(body["retry_after_s"]))
    assert [r.status_code for r in others] == [200, 200, 200]
    assert {r.status_code for r in health} == {200}


async def test_rate_limited_requests_are_refused_before_their_body_is_read(infra: Infra) -> None:
    async with infra.serve(request_rate_per_s=0.01, request_burst=1) as http:
        assert (await http.get("/v1/whoami", headers=auth())).status_code == 200
        refused = await http.post("/v1/jobs", json=SPEC_BODY, headers=auth())
    assert_problem(refused, 429, "rate_limited")
    assert (await infra.js.stream_info(subjects.EVENTS_STREAM)).state.messages == 0


UI = "https://ui.example.com"
PREFLIGHT = {"Origin": UI, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type,idempotency-key"}


async def test_cors_answers_a_preflight_from_the_configured_origin(infra: Infra) -> None:
    async with infra.serve(cors_origins=[UI]) as http:
        preflight = await http.options("/v1/jobs", headers=PREFLIGHT)
        simple = await http.get("/v1/whoami", headers={**auth(), "Origin": UI})
        stranger = await http.options("/v1/jobs", headers={**PREFLIGHT, "Origin": "https://evil.example.com"})
    assert preflight.status_code in (200, 204), preflight.text
    assert preflight.headers["access-control-allow-origin"] == UI
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
    assert simple.headers["access-control-allow-origin"] == UI
    assert "retry-after" in simple.headers["access-control-expose-headers"].lower()
    assert stranger.headers.get("access-control-allow-origin") != "https://evil.example.com"


async def test_without_configured_origins_there_are_no_cors_headers(infra: Infra) -> None:
    async with infra.serve() as http:
        preflight = await http.options("/v1/jobs", headers=PREFLIGHT)
        simple = await http.get("/v1/whoami", headers={**auth(), "Origin": UI})
    for response in (preflight, simple):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")], response.headers
