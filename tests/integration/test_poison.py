"""Poison input at the edge: NUL bytes, huge argv and stdin, deep JSON, invalid UTF-8, lone surrogates and label
floods are answered with 400/413 problem+json (never 500) and never reach the log, terminal escapes are stored and
run like any text, and other tenants' jobs submitted alongside all finish promptly.

The gateway is served in-process for the body fuzz, and as real processes (scheduler, gateway, a worker without a
sandbox) for the cluster test, where a poisoned projection would leave the other tenants' jobs stuck."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from integration.cluster import Cluster
from integration.gateway_app import GatewayInfra, gateway_infra, serve
from integration.test_projection_faults import _folded_up_to, _rebuild
from integration.test_scheduler import all_terminal, base, log
from support import wait_until

from xrunner.contracts import subjects
from xrunner.contracts.events import JobEvent, JobFailed, JobSubmitted
from xrunner.contracts.limits import MAX_STDIN_BYTES
from xrunner.servicekit import streams
from xrunner.servicekit.auth import SCOPES, AuthError, JwtVerifier, mint
from xrunner.servicekit.deadletter import PROJECTION_HEADER
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id

SECRET, ISSUER, AUDIENCE = "a-test-secret-of-at-least-32-bytes", "xrunner", "xrunner"
ESCAPES = "\x1b[31mred\x1b[0m \x1b]0;pwned\x07 \x1b[2J\r\x08\x01\u202e"
MAX_BODY = 4_194_304  # the gateway's default


def process(*argv: str, **workload: Any) -> dict[str, Any]:
    return {"workload": {"kind": "process", "argv": list(argv) or ["true"], **workload}}


def nul_json(body: dict[str, Any]) -> bytes:
    """`body` as JSON with every `<NUL>` written as the escape `\\u0000`."""
    return json.dumps(body).replace("<NUL>", "\\u0000").encode()


def deep(depth: int) -> bytes:
    return b'{"workload": ' + b"[" * depth + b"]" * depth + b"}"


# (method, path, raw body, expected status, expected code, expected field or None)
POISON: list[tuple[str, str, bytes, int, str, str | None]] = [
    ("POST", "/v1/jobs", nul_json(process("echo", "a<NUL>b")), 400, "invalid_request", "$.workload.argv[1]"),
    ("POST", "/v1/jobs", nul_json({**process(), "labels": {"team": "x<NUL>"}}), 400, "invalid_request", None),
    ("POST", "/v1/jobs", nul_json(process(env={"A": "<NUL>"})), 400, "invalid_request", None),
    ("POST", "/v1/jobs", nul_json(process(stdin="<NUL>")), 400, "invalid_request", "$.workload.stdin"),
    ("POST", "/v1/jobs", nul_json(process(cwd="/tmp<NUL>")), 400, "invalid_request", "$.workload.cwd"),
    ("POST", "/v1/jobs", nul_json({**process(), "name": "<NUL>"}), 400, "invalid_request", "$.name"),
    ("POST", "/v1/jobs", nul_json({"workload": {"kind": "docker", "image": "alpine<NUL>"}}), 400, "invalid_request",
     "$.workload.image"),
    ("POST", "/v1/jobs", json.dumps(process("echo", *["x" * 65_000] * 40)).encode(), 413, "spec_too_large",
     "$.workload.argv"),
    ("POST", "/v1/jobs", json.dumps(process(stdin="x" * 1_048_576)).encode(), 413, "spec_too_large",
     "$.workload.stdin"),
    ("POST", "/v1/jobs", json.dumps(process(stdin="x" * (MAX_BODY + 1))).encode(), 413, "payload_too_large", None),
    ("POST", "/v1/jobs", deep(1_000), 400, "too_deep", None),
    ("POST", "/v1/jobs", deep(100_000), 400, "too_deep", None),
    ("POST", "/v1/jobs", b'{"workload": {"kind": "process", "argv": ["\xff\xfe"]}}', 400, "invalid_request", None),
    ("POST", "/v1/jobs", b'{"workload": {"kind": "process", "argv": ["\\ud800"]}}', 400, "invalid_request", None),
    ("POST", "/v1/jobs", json.dumps({**process(), "labels": {f"k{i}": "v" for i in range(10_000)}}).encode(), 400,
     "invalid_request", "$.labels"),
    ("POST", "/v1/jobs/batch", nul_json({"jobs": [process(), process("a<NUL>")]}), 400, "invalid_request",
     "$.jobs[1].workload.argv[0]"),
    ("POST", "/v1/jobs/batch", json.dumps({"jobs": [process(), process(stdin="x" * (MAX_STDIN_BYTES + 1))]}).encode(),
     413, "spec_too_large", "$.jobs[1].workload.stdin"),
    ("POST", "/v1/jobs/batch", b'{"jobs": ' + deep(5_000) + b"}", 400, "too_deep", None),
    ("POST", "/v1/jobs/dry-run", nul_json(process("<NUL>")), 400, "invalid_request", "$.workload.argv[0]"),
    ("POST", "/v1/jobs/dry-run", json.dumps(process(stdin="x" * 1_048_576)).encode(), 413, "spec_too_large",
     "$.workload.stdin"),
    ("POST", "/v1/jobs/dry-run", deep(2_000), 400, "too_deep", None),
    ("PUT", "/v1/tenants/mallory", b'{"weight": ' + b"[" * 3_000 + b"]" * 3_000 + b"}", 400, "too_deep", None),
    ("POST", "/v1/jobs/nosuchjob/cancel", nul_json({"reason": "<NUL>"}), 400, "invalid_request", "$.reason"),
    ("POST", "/v1/jobs/nosuchjob/cancel", deep(2_000), 400, "too_deep", None),
]


async def send(http: httpx.AsyncClient, method: str, path: str, body: bytes) -> httpx.Response:
    return await http.request(method, path, content=body, headers={"Content-Type": "application/json"})


def assert_refused(response: httpx.Response, status: int, code: str, field: str | None) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code, problem
    if field is not None:
        assert problem["field"] == field, problem
    assert problem.get("detail"), problem


# --- in-process: the body fuzz ------------------------------------------------------------------------------------


def token(tenant: str) -> str:
    return mint(SECRET, tenant=tenant, subject=f"{tenant}-user", scopes=list(SCOPES), issuer=ISSUER,
                audience=AUDIENCE, ttl_s=900, now=int(time.time()))


@pytest.fixture
async def gateway(fresh_nats_url: str, database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, GatewayInfra]]:
    async with gateway_infra(fresh_nats_url, database_url, "gateway-poison-test") as infra, \
            serve(infra, JwtVerifier(SECRET, issuer=ISSUER, audience=AUDIENCE), max_body_bytes=MAX_BODY) as http:
        http.headers["Authorization"] = f"Bearer {token('mallory')}"
        yield http, infra


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Raw bytes, deep nesting anywhere, or a valid spec with one part replaced by arbitrary JSON or text."""
    kind = draw(st.sampled_from(["bytes", "deep", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "deep":
        depth = draw(st.integers(min_value=1, max_value=20_000))
        opener = draw(st.sampled_from([b"[", b'{"a":']))
        closer = b"]" if opener == b"[" else b"}"
        return b'{"workload":' + opener * depth + b"1" + closer * depth + b"}"
    body: dict[str, Any] = process("echo", "fuzz")
    target = draw(st.sampled_from([body, body["workload"]]))
    key = draw(st.sampled_from(["workload", "kind", "argv", "env", "stdin", "labels", "name", "image", "resources"]))
    target[key] = draw(json_values | st.text(max_size=30) | st.lists(st.text(max_size=8), max_size=3))
    return json.dumps(body).encode()


def fuzz(base_url: str, headers: dict[str, str]) -> None:
    """POST generated bodies to every JSON-taking route; no answer may be a 5xx, every 4xx is problem+json."""
    routes = ["/v1/jobs", "/v1/jobs/batch", "/v1/jobs/dry-run"]

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(body=bodies(), route=st.sampled_from(routes))
    def run(body: bytes, route: str) -> None:
        if route.endswith("/batch"):
            body = b'{"jobs": [' + body + b"]}"
        response = httpx.post(base_url + route, content=body, headers=headers, timeout=10)
        assert response.status_code < 500, (route, body[:200], response.text[:300])
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json"), response.text[:300]

    run()


async def test_no_generated_body_gets_a_server_error(gateway: tuple[httpx.AsyncClient, GatewayInfra]) -> None:
    http, _ = gateway
    headers = {"Authorization": http.headers["Authorization"], "Content-Type": "application/json"}
    await asyncio.to_thread(fuzz, str(http.base_url).rstrip("/"), headers)


async def test_every_poison_body_is_refused_and_nothing_of_it_reaches_the_log(
        gateway: tuple[httpx.AsyncClient, GatewayInfra]) -> None:
    http, infra = gateway
    for method, path, body, status, code, field in POISON:
        assert_refused(await send(http, method, path, body), status, code, field)
    info = await infra.js.stream_info(subjects.EVENTS_STREAM)
    assert info.state.messages == 0, "a refused request appended an event"


async def test_a_nul_in_a_label_filter_or_a_cursor_is_answered_not_crashed(
        gateway: tuple[httpx.AsyncClient, GatewayInfra]) -> None:
    http, _ = gateway
    assert (await http.post("/v1/jobs", json={**process(), "labels": {"team": "a"}})).status_code == 202
    filtered = await http.get("/v1/jobs", params={"label": "team=a\x00"})
    assert (filtered.status_code, filtered.json()["jobs"]) == (200, [])
    cursor = base64.urlsafe_b64encode(b"2025-01-01T00:00:00+00:00|a\x00b").decode()
    refused = await http.get("/v1/jobs", params={"cursor": cursor})
    assert (refused.status_code, refused.json()["code"], refused.json()["field"]) == (400, "invalid_cursor", "cursor")


async def test_a_number_for_created_after_is_refused_and_a_date_time_is_taken(
    gateway: tuple[httpx.AsyncClient, GatewayInfra],
) -> None:
    http, _ = gateway
    refused = await http.get("/v1/jobs", params={"created_after": "11"})
    assert (refused.status_code, refused.json()["field"]) == (400, "created_after"), refused.text
    taken = await http.get("/v1/jobs", params={"created_after": "2025-01-01T00:00:00Z"})
    assert (taken.status_code, taken.json()["jobs"]) == (200, []), taken.text


def test_a_token_whose_subject_holds_a_nul_is_refused() -> None:
    """The subject is written into events (`submitted_by`), which every projection must be able to store."""
    verifier = JwtVerifier(SECRET, issuer=ISSUER, audience=AUDIENCE)
    bad = mint(SECRET, tenant="mallory", subject="a\x00b", scopes=["jobs:write"], issuer=ISSUER,
               audience=AUDIENCE, ttl_s=60, now=int(time.time()))
    with pytest.raises(AuthError, match="NUL"):
        verifier.verify(bad)
    assert verifier.verify(token("mallory")).subject == "mallory-user"


# --- real processes: other tenants keep being served --------------------------------------------------------------


async def submit(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post("/v1/jobs", json=body)
    assert response.status_code in (201, 202), response.text
    return str(response.json()["job"]["id"])


def seconds(job: dict[str, Any]) -> float:
    """From the job's creation to its end, as the read model recorded them."""
    return (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["created_at"])).total_seconds()


async def every_tenants_jobs_done(jobs: dict[httpx.AsyncClient, list[str]]) -> list[dict[str, Any]] | None:
    found = [await all_terminal(client, ids) for client, ids in jobs.items()]
    return None if None in found else [job for each in found if each for job in each.values()]


async def test_poison_submits_are_refused_while_other_tenants_jobs_all_finish(cluster: Cluster) -> None:
    base(cluster, slots=8)
    clients = [cluster.client(f"tenant{i}") for i in range(4)]
    async with contextlib.AsyncExitStack() as stack:
        for client in clients:
            await stack.enter_async_context(client)
        mallory = await stack.enter_async_context(cluster.client("mallory"))
        before = [asyncio.gather(*(submit(c, process("true")) for _ in range(5))) for c in clients]
        refused = await asyncio.gather(*(send(mallory, m, p, b) for m, p, b, *_ in POISON))
        escaped = await submit(mallory, {**process("printf", "%s", ESCAPES), "labels": {"title": ESCAPES},
                                         "name": ESCAPES})
        after = [asyncio.gather(*(submit(c, process("true")) for _ in range(5))) for c in clients]
        ids = {c: [*await b, *await a] for c, b, a in zip(clients, before, after, strict=True)}
        for response, (_, _, _, status, code, field) in zip(refused, POISON, strict=True):
            assert_refused(response, status, code, field)
        done = await wait_until(lambda: every_tenants_jobs_done(ids), timeout=30, what="every other tenant's job")
        assert len(done) == 40 and all(job["state"] == "succeeded" for job in done), done
        assert max(map(seconds, done)) < 10, sorted(map(seconds, done))
        ran = await wait_until(lambda: all_terminal(mallory, [escaped]), timeout=15, what="the job with escapes")
        job: dict[str, Any] = ran[escaped]
        assert (job["state"], job["spec"]["labels"]["title"], job["spec"]["name"]) == ("succeeded", ESCAPES, ESCAPES)
        assert (await mallory.get(f"/v1/jobs/{escaped}/logs")).text == ESCAPES
    submitted = [e for _, e in await log(cluster.nats_url) if isinstance(e, JobSubmitted) and e.tenant == "mallory"]
    assert [e.job_id for e in submitted] == [escaped], "a refused request appended an event"
    for name in ("gateway", "scheduler"):
        assert "projection batch failed" not in cluster.log(name), cluster.log(name)[-3000:]


# --- real processes: an event that slipped past the edge ----------------------------------------------------------


async def _running(client: httpx.AsyncClient, job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
    return job if job["state"] == "running" else None


async def _append_raw(nats_url: str, event: JobEvent) -> int:
    """Append `event` straight to the log, as a buggy writer would (no edge, no compare-and-set)."""
    nc = await streams.connect(nats_url, "test-buggy-writer")
    try:
        return (await EventStore(nc.jetstream()).append(event, msg_id=new_id())).seq
    finally:
        await nc.close()


async def _parked(nats_url: str, job_id: str) -> list[str] | None:
    """The projections that parked an event of `job_id` (None until both the gateway's and the scheduler's
    have)."""
    nc = await streams.connect(nats_url, "test-dead-reader")
    try:
        js = nc.jetstream()
        last = (await js.stream_info(subjects.DEAD_STREAM)).state.last_seq
        found = [(await js.get_msg(subjects.DEAD_STREAM, seq)) for seq in range(1, last + 1)]
    finally:
        await nc.close()
    names = sorted((msg.headers or {}).get(PROJECTION_HEADER, "") for msg in found if (msg.subject or "")
                   .endswith(f".{job_id}"))
    return names if len(names) >= 2 else None


async def test_an_event_no_projection_can_store_is_parked_its_job_fails_and_other_tenants_run(
        cluster: Cluster) -> None:
    base(cluster, slots=8)
    async with cluster.client("mallory") as mallory, cluster.client("tenant0") as other:
        victim = await submit(mallory, process("sleep", "30"))
        running = await wait_until(lambda: _running(mallory, victim), timeout=15, what="the victim to run")
        poison = JobFailed(event_id=new_id(), occurred_at=datetime.now(UTC), tenant="mallory", job_id=victim,
                           attempt=running["attempt"], exit_code=1, reason="stderr tail: \x00\x1b[2J")
        poison_seq = await _append_raw(cluster.nats_url, poison)
        ids = [await submit(other, process("true")) for _ in range(10)]
        done = await wait_until(lambda: every_tenants_jobs_done({other: ids}), timeout=30, what="the other jobs")
        assert [job["state"] for job in done] == ["succeeded"] * 10, done
        ended = await wait_until(lambda: all_terminal(mallory, [victim]), timeout=15, what="the victim to end")
    job: dict[str, Any] = ended[victim]
    assert job["state"] == "failed", job
    assert job["reason"].startswith("an event of this job could not be applied by "), job
    assert "\x00" not in job["reason"] and "\x1b" not in job["reason"], job
    assert await wait_until(lambda: _parked(cluster.nats_url, victim), what="the dead letters") == [
        "gateway.jobs", "scheduler.jobs"]
    last = max(seq for seq, _ in await log(cluster.nats_url))
    assert last > poison_seq
    for schema in ("gateway", "scheduler"):
        await wait_until(lambda s=schema: _folded_up_to(cluster.database_url, s, last),  # type: ignore[misc]
                         what=f"the {schema} projection to pass the poison")
        assert "rebuild equals the live projection" in await asyncio.to_thread(_rebuild, cluster, schema)
