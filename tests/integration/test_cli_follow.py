"""`xrunner submit --wait` and `xrunner logs -f` as real processes against real services: the output is pushed by
the realtime edge (not polled from the gateway), and a dropped connection is resumed where it broke off."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from asyncio.subprocess import PIPE
from pathlib import Path

from integration.cluster import SECRET, Cluster
from support import W0

from xrunner.servicekit.auth import mint

TENANT = "acme"


class CuttableRelay:
    """A TCP relay to the realtime edge whose open connections the test cuts, as a flaky network would; it keeps
    each connection's first bytes (the request line and headers) to show how the client came back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.requests: list[bytes] = []
        self.open: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        edge_r, edge_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.open += [client_w, edge_w]
        first = await client_r.read(65_536)
        self.requests.append(first)
        edge_w.write(first)
        await asyncio.gather(_pipe(client_r, edge_w), _pipe(edge_r, client_w), return_exceptions=True)

    def cut(self) -> None:
        for writer in self.open:
            writer.transport.abort()
        self.open.clear()

    def requests_to(self, path: str) -> list[str]:
        return [r.decode(errors="replace") for r in self.requests if f" {path}".encode() in r.split(b"\r\n")[0]]

    async def close(self) -> None:
        self.cut()
        self.server.close()
        await self.server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65_536):
        writer.write(data)
        await writer.drain()
    writer.close()


def stack(cluster: Cluster) -> None:
    cluster.start("scheduler", "scheduler", wait=False, tick_s=0.1)
    cluster.start("gateway", "gateway", wait=False)
    cluster.start("worker0", "worker", wait=False, slots=4, worker_id=W0, sandbox="none")
    cluster.start("realtime", "realtime", wait=False, ping_s=1)
    for name in list(cluster.procs):
        cluster.wait_ready(name)


def cli_env(cluster: Cluster, realtime_url: str) -> dict[str, str]:
    token = mint(SECRET, tenant=TENANT, subject="cli-user", scopes=["jobs:read", "jobs:write"], issuer="xrunner",
                 audience="xrunner", ttl_s=600, now=int(time.time()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
    return env | {"XR_API_URL": cluster.api(), "XR_TOKEN": token, "XR_REALTIME_URL": realtime_url}


async def xrunner(cluster: Cluster, realtime_url: str, cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "xrunner.cli", *args, cwd=cwd, stdout=PIPE,
                                                stderr=PIPE, env=cli_env(cluster, realtime_url))


async def test_submit_wait_prints_the_output_live_resumes_a_dropped_stream_and_exits_with_the_jobs_code(
    cluster: Cluster, tmp_path: Path,
) -> None:
    stack(cluster)
    relay = CuttableRelay(cluster.ports["realtime"])
    gate = tmp_path / "gate"
    script = f"echo one; while [ ! -e {gate} ]; do sleep 0.05; done; echo two; echo three >&2; exit 3"
    try:
        cli = await xrunner(cluster, await relay.start(), tmp_path, "submit", "--wait", "--", "sh", "-c", script)
        assert cli.stdout is not None
        assert await asyncio.wait_for(cli.stdout.readline(), 60) == b"one\n", "the output came live"
        relay.cut()
        gate.touch()
        rest, err = await asyncio.wait_for(cli.communicate(), 60)
    finally:
        await relay.close()
    assert (cli.returncode, rest) == (3, b"two\n"), err
    assert b"three\n" in err and b"failed exit=3" in err
    logs = relay.requests_to("/v1/jobs/")
    assert len(logs) == 2, logs
    assert "last-event-id: 4\r\n" in logs[1].lower(), "the second connection resumed after `one\\n` (4 bytes)"
    assert relay.requests_to("/v1/events"), "the outcome came from the event stream"


async def test_logs_follow_prints_a_jobs_whole_output_whatever_state_it_is_in(cluster: Cluster, tmp_path: Path) -> None:
    stack(cluster)
    async with cluster.client(TENANT) as client:
        response = await client.post("/v1/jobs", json={"workload": {"kind": "process",
                                                                    "argv": ["sh", "-c", "echo out; echo err >&2"]}})
        job_id = response.json()["job"]["id"]
    cli = await xrunner(cluster, cluster.api("realtime"), tmp_path, "logs", "-f", job_id)
    out, err = await asyncio.wait_for(cli.communicate(), 60)
    assert (cli.returncode, out, err) == (0, b"out\n", b"err\n")
    again = await xrunner(cluster, cluster.api("realtime"), tmp_path, "logs", "-f", job_id)  # now it has ended
    assert await asyncio.wait_for(again.communicate(), 60) == (b"out\n", b"err\n")
