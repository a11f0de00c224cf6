"""`WS /v1/jobs/{id}/attach` over a real WebSocket to the realtime edge, with a real scheduler, gateway and worker:
typing into an interactive job, its output, its end, resizing a tty, and who may attach to what."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from integration.cluster import SECRET, Cluster
from integration.test_realtime import token
from support import wait_until
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from xrunner.contracts import events as ev
from xrunner.servicekit import streams
from xrunner.servicekit.auth import Principal, mint
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.tickets import mint_ticket

TENANT = "acme"


def stack(cluster: Cluster) -> None:
    """Every service, with a worker id of the test's own: a worker kills whatever the jobs of a previous worker of
    its id left, so a `w0` started by another test run on this machine would kill this test's jobs."""
    cluster.start("scheduler", "scheduler", wait=False, tick_s=0.1)
    cluster.start("gateway", "gateway", wait=False)
    cluster.start("worker0", "worker", wait=False, worker_id=f"attach-{uuid.uuid4().hex[:8]}", drain_grace_s=0.5)
    cluster.start("realtime", "realtime", wait=False, ping_s=1)
    for name in list(cluster.procs):
        cluster.wait_ready(name)


async def submit(cluster: Cluster, argv: list[str], tenant: str = TENANT, **workload: object) -> str:
    async with cluster.client(tenant) as client:
        body = {"workload": {"kind": "process", "argv": argv, **workload}}
        response = await client.post("/v1/jobs", json=body)
        assert response.status_code in (201, 202), response.text
        return str(response.json()["job"]["id"])


def url(cluster: Cluster, job_id: str, query: str = "") -> str:
    return f"ws://127.0.0.1:{cluster.ports['realtime']}/v1/jobs/{job_id}/attach{query}"


@asynccontextmanager
async def attached(cluster: Cluster, job_id: str, bearer: str | None = None,
                   query: str = "") -> AsyncIterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {bearer or token(TENANT)}"} if not query.startswith("?ticket") else {}
    async with connect(url(cluster, job_id, query), additional_headers=headers, open_timeout=10) as ws:
        yield ws


async def output_until(ws: ClientConnection, needle: bytes, timeout: float = 20) -> bytes:
    """Binary frames (the job's output) until `needle` shows up in them."""
    seen = b""
    async with asyncio.timeout(timeout):
        while needle not in seen:
            frame = await ws.recv()
            assert isinstance(frame, bytes), f"a control frame before {needle!r}: {frame!r} (output: {seen!r})"
            seen += frame
    return seen


async def end_frame(ws: ClientConnection, timeout: float = 20) -> dict[str, object]:
    """Skip output up to the final text frame, which must be followed by a normal close."""
    async with asyncio.timeout(timeout):
        while isinstance(frame := await ws.recv(), bytes):
            pass
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1000, (ws.close_code, ws.close_reason)
    return dict(json.loads(frame))


async def refused(cluster: Cluster, job_id: str, bearer: str | None = None, query: str = "") -> tuple[int, dict]:
    with pytest.raises(InvalidStatus) as refusal:
        async with attached(cluster, job_id, bearer, query):
            pass
    response = refusal.value.response
    return response.status_code, json.loads(response.body or b"{}")


async def cancel(cluster: Cluster, *jobs: str) -> None:
    """Stop what a test leaves running, so that the worker stops at once."""
    async with cluster.client(TENANT) as client:
        for job_id in jobs:
            assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 202


async def job_state(cluster: Cluster, job_id: str) -> str:
    async with cluster.client(TENANT) as client:
        return str((await client.get(f"/v1/jobs/{job_id}")).json()["state"])


async def history(cluster: Cluster, job_id: str, tenant: str = TENANT) -> list[ev.Event]:
    nc = await streams.connect(cluster.nats_url, "test-reader")
    try:
        return [e for _, e in await EventStore(nc.jetstream()).history(tenant, job_id)]
    finally:
        await nc.close()


async def test_an_interactive_shell_answers_what_is_typed_and_exit_ends_it_with_an_end_frame(cluster: Cluster) -> None:
    stack(cluster)
    job = await submit(cluster, ["sh"], interactive=True)
    async with attached(cluster, job) as ws:
        await ws.send(b"echo hi\n")  # a binary frame is raw input
        assert b"hi\n" in await output_until(ws, b"hi\n")
        await ws.send(json.dumps({"type": "input", "data": "exit\n"}))  # a text frame is a control message
        assert await end_frame(ws) == {"type": "end", "state": "succeeded", "exit_code": 0}
    assert await job_state(cluster, job) == "succeeded"
    (audit,) = [e for e in await history(cluster, job) if isinstance(e, ev.JobAttached)]
    assert audit.subject == f"{TENANT}-viewer" and audit.tenant == TENANT and audit.attempt in (0, 1)


async def test_a_tty_jobs_terminal_is_resized_from_the_attach_and_eof_ends_its_shell(cluster: Cluster) -> None:
    stack(cluster)
    job = await submit(cluster, ["sh"], tty=True)
    async with attached(cluster, job) as ws:
        await ws.send(json.dumps({"type": "resize", "rows": 33, "cols": 101}))
        await ws.send(b"stty size; echo size-$((6*7))\n")  # the terminal echoes the line: wait for the computed 42
        assert b"33 101\r\n" in await output_until(ws, b"size-42")
        await ws.send(json.dumps({"type": "eof"}))
        assert await end_frame(ws) == {"type": "end", "state": "succeeded", "exit_code": 0}


async def test_a_bad_control_message_is_answered_and_the_terminal_keeps_working(cluster: Cluster) -> None:
    stack(cluster)
    job = await submit(cluster, ["cat"], interactive=True)
    async with attached(cluster, job) as ws:
        for bad in ("not json", json.dumps({"type": "resize", "rows": 0, "cols": 80}), json.dumps({"type": "x"})):
            await ws.send(bad)
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["type"] == "error" and reply["detail"], reply
        await ws.send(b"still here\n")
        await output_until(ws, b"still here\n")
        await ws.send(json.dumps({"type": "eof"}))
        assert (await end_frame(ws))["state"] == "succeeded"


async def test_output_from_an_offset_replays_what_came_before_the_attach(cluster: Cluster) -> None:
    stack(cluster)
    job = await submit(cluster, ["sh", "-c", "echo before; cat"], interactive=True)
    async with cluster.client(TENANT) as client:
        await wait_until(lambda: _logged(client, job, "before"), what="the job's first line")
    async with attached(cluster, job, query="?offset=0") as ws:
        assert (await output_until(ws, b"before\n")).startswith(b"before\n")
        await ws.send(b"after\n")
        await output_until(ws, b"after\n")
    await cancel(cluster, job)


async def _logged(client: object, job_id: str, text: str) -> bool:
    response = await client.get(f"/v1/jobs/{job_id}/logs")  # type: ignore[attr-defined]
    return response.status_code == 200 and text in response.text


async def test_attach_is_refused_without_the_right_credentials_tenant_scope_or_job(cluster: Cluster) -> None:
    stack(cluster)
    job = await submit(cluster, ["cat"], interactive=True)
    plain = await submit(cluster, ["sleep", "30"])
    who = Principal(subject="browser", tenant=TENANT, scopes=frozenset({"jobs:read", "jobs:write"}))
    stale = mint_ticket(SECRET, who, ttl_s=30, jti=new_id(), now=int(time.time()) - 3600)
    expired = mint(SECRET, tenant=TENANT, subject="u", scopes=["jobs:write"], issuer="xrunner", audience="xrunner",
                   ttl_s=-600, now=int(time.time()))
    read_only = mint(SECRET, tenant=TENANT, subject="u", scopes=["jobs:read"], issuer="xrunner", audience="xrunner",
                     ttl_s=600, now=int(time.time()))
    for bearer, query in ((None, "?ticket=garbage"), (None, f"?ticket={stale}"), (expired, "")):
        status, body = await refused(cluster, job, bearer, query)
        assert (status, body["code"]) == (401, "unauthenticated"), body
    assert (await refused(cluster, job, read_only))[0] == 403
    status, body = await refused(cluster, job, token("globex"))  # another tenant's job does not exist for them
    assert (status, body["code"]) == (404, "job_not_found")
    assert (await refused(cluster, "nosuchjob"))[1]["code"] == "job_not_found"
    status, body = await refused(cluster, plain)
    assert (status, body["code"]) == (409, "not_interactive")
    ticket = mint_ticket(SECRET, who, ttl_s=30, jti=new_id(), now=int(time.time()))
    async with attached(cluster, job, query=f"?ticket={ticket}") as ws:  # a browser's way in
        await ws.send(b"by ticket\n")
        await output_until(ws, b"by ticket\n")
        await ws.send(json.dumps({"type": "eof"}))
        await end_frame(ws)
    status, body = await refused(cluster, job, query=f"?ticket={ticket}")
    assert status == 401 and "already used" in body["detail"]
    status, body = await refused(cluster, job)
    assert (status, body["code"]) == (409, "job_ended")
    attached_by = [e.subject for e in await history(cluster, job) if isinstance(e, ev.JobAttached)]
    assert attached_by == ["browser"]  # refusals are not audited as attaches
    await cancel(cluster, plain)


async def test_the_connection_is_closed_when_its_credential_expires(cluster: Cluster) -> None:
    stack(cluster)
    job = await submit(cluster, ["cat"], interactive=True)
    short = mint(SECRET, tenant=TENANT, subject="u", scopes=["jobs:write"], issuer="xrunner", audience="xrunner",
                 ttl_s=3, now=int(time.time()))
    async with attached(cluster, job, short) as ws:
        async with asyncio.timeout(20):
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
    assert ws.close_code == 4401, (ws.close_code, ws.close_reason)
    assert await job_state(cluster, job) == "running"  # the job goes on: attach again to continue
    await cancel(cluster, job)


async def test_xrunner_attach_relays_piped_stdin_and_exits_with_the_jobs_code(cluster: Cluster) -> None:
    stack(cluster)
    job = await submit(cluster, ["sh"], interactive=True)
    env = {**os.environ, "XR_API_URL": cluster.api(), "XR_TOKEN": token(TENANT),
           "XR_REALTIME_URL": cluster.api("realtime")}
    cli = await asyncio.create_subprocess_exec(sys.executable, "-m", "xrunner.cli", "attach", job, env=env,
                                               stdin=PIPE, stdout=PIPE, stderr=PIPE)
    out, err = await asyncio.wait_for(cli.communicate(b"echo hi\nexit 3\n"), 30)
    assert (cli.returncode, out) == (3, b"hi\n"), err
    assert b"job failed exit=3" in err
