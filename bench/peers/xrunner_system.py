"""xrunner as the benchmark drives it: a private embedded stack (`xrunner up`, a fresh data dir, a free port range),
one keep-alive HTTP client for submits, and one SSE stream of the tenant's terminal job events from the realtime
edge for completions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from workloads import Completion

from xrunner.cli.edge import SseParser
from xrunner.cli.stack import DEFAULT_WORKERS

TERMINAL = ("succeeded", "failed", "timed_out", "cancelled", "expired", "rejected")
PORT_OFFSETS = (0, 1, 2, 3, 4, 22, 32)  # the services, then NATS and Postgres (see xrunner.cli.stack)


class Xrunner:
    def __init__(self, sandbox: str, slots: int, extra_args: list[str]) -> None:
        """`slots` concurrent jobs in all, as every system gets: `xrunner up`'s `--slots` is per worker process, so
        they are shared out over its workers (before session 9 each of the default two got all of them: 200 slots
        where the others had 100)."""
        self.name = f"xrunner-{sandbox}"
        rest, workers = list(extra_args), DEFAULT_WORKERS
        if "--workers" in rest:
            at = rest.index("--workers")
            workers = int(rest[at + 1])
            del rest[at : at + 2]
        if slots % workers:
            raise ValueError(f"{slots} slots cannot be shared out evenly over {workers} worker processes")
        self.argv = ["--slots", str(slots // workers), "--workers", str(workers), "--sandbox", sandbox, *rest]
        self.pending: dict[str, asyncio.Future[Completion]] = {}
        self.early: dict[str, Completion] = {}  # ends pushed before their submit's response was read
        self.throttled = 0
        self.resent = 0

    async def start(self) -> None:
        settings = await asyncio.to_thread(self._launch)
        headers = {"Authorization": f"Bearer {settings['XR_TOKEN']}"}
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        self.http = httpx.AsyncClient(base_url=settings["XR_API_URL"], headers=headers, limits=limits, timeout=120)
        self.edge = httpx.AsyncClient(base_url=settings["XR_REALTIME_URL"], headers=headers,
                                      timeout=httpx.Timeout(10.0, read=None))
        self.listening = asyncio.Event()
        self.stream = asyncio.create_task(self._follow())
        await asyncio.wait([self.stream, asyncio.create_task(self.listening.wait())], timeout=30,
                           return_when=asyncio.FIRST_COMPLETED)
        if not self.listening.is_set():
            raise RuntimeError("the realtime edge's event stream did not open")

    def _launch(self, timeout: float = 180.0) -> dict[str, str]:
        """Start `xrunner up` and return its env file (API and edge URLs, a token), written once all is ready."""
        self.dir = Path(tempfile.mkdtemp(prefix="peers-xrunner-"))
        argv = [sys.executable, "-m", "xrunner.cli", "up", "--data-dir", str(self.dir / ".xrunner"),
                "--port", str(_free_base()), *self.argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
        with (self.dir / "up.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        path, deadline = self.dir / ".xrunner" / "env", time.monotonic() + timeout
        while not path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.send_signal(signal.SIGINT)  # its servers die with it (PDEATHSIG)
                raise RuntimeError(f"xrunner up did not start; see {self.dir / 'up.log'}")
            time.sleep(0.2)
        return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)

    async def _follow(self) -> None:
        """Resolve each job's future from its terminal event on the tenant's live event stream."""
        params = [("type", t) for t in TERMINAL]
        async with self.edge.stream("GET", "/v1/events", params=params) as response:
            response.raise_for_status()
            self.listening.set()
            parser = SseParser()
            async for line in response.aiter_lines():
                message = parser.feed(line)
                if message is None or message.event not in TERMINAL:
                    continue
                end = Completion(message.event == "succeeded", time.perf_counter())
                job_id = json.loads(message.data)["job_id"]
                future = self.pending.pop(job_id, None)
                if future is None:
                    self.early[job_id] = end
                elif not future.done():
                    future.set_result(end)

    async def submit(self, argv: list[str]) -> asyncio.Future[Completion]:
        if self.stream.done():
            raise RuntimeError("the event stream ended") from self.stream.exception()
        body = json.dumps({"workload": {"kind": "process", "argv": argv}}).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
        while True:
            try:
                response = await self.http.post("/v1/jobs", content=body, headers=headers)
            except httpx.TransportError:
                self.resent += 1  # a dropped connection: the same key makes the resend safe (one job either way)
                continue
            if response.status_code != 429:
                break
            self.throttled += 1  # the gateway's per-tenant request rate: wait as told, and count it
            await asyncio.sleep(float(response.headers.get("retry-after", "0.05")))
        response.raise_for_status()
        job_id = response.json()["job"]["id"]
        ended: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        if job_id in self.early:
            ended.set_result(self.early.pop(job_id))
        else:
            self.pending[job_id] = ended
        return ended

    def roots(self) -> list[int]:
        return [self.proc.pid]

    async def stop(self) -> None:
        self.stream.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await self.stream
        await self.http.aclose()
        await self.edge.aclose()
        self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(self.proc.wait, 90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_base() -> int:
    """A base port whose service, NATS and Postgres ports are all free."""
    for _ in range(200):
        base = random.randrange(20_000, 32_000)  # below the ephemeral range
        if all(_free(base + offset) for offset in PORT_OFFSETS):
            return base
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0
