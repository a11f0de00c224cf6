"""The Python task queues xrunner is compared with, each on a private redis-server on a free loopback port:
SAQ (completion pushed through its job listeners, Redis pub/sub) and Celery (completion pushed through its Redis
result backend's pub/sub consumer)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from workloads import Completion

from xrunner.cli.embedded import free_port

HERE = Path(__file__).resolve().parent
WORKER_LOG = "worker.log"


class RedisBacked:
    """A redis-server (its built-in defaults: RDB snapshots, no AOF) and one worker process of the queue."""

    name = "?"

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.dir = Path(tempfile.mkdtemp(prefix=f"peers-{self.name}-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    def worker_argv(self) -> list[str]:
        raise NotImplementedError

    def start_servers(self) -> str:
        """Start redis-server and the worker; returns the Redis URL."""
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        port = free_port()
        self.procs.append(self._spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                       "--dir", str(self.dir)], "redis.log", {}))
        _wait_for_redis(port, self.procs[0])
        url = f"redis://127.0.0.1:{port}"
        env = {"PEERS_REDIS_URL": url, "PEERS_CONCURRENCY": str(self.concurrency), "PYTHONPATH": str(HERE)}
        self.procs.append(self._spawn(self.worker_argv(), WORKER_LOG, env))
        return url

    def _spawn(self, argv: list[str], log: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.dir / log).open("ab") as out:
            return subprocess.Popen(argv, cwd=HERE, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)

    def roots(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop_servers(self) -> None:
        for proc in reversed(self.procs):  # the worker first, then Redis
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Saq(RedisBacked):
    name = "saq"

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "saq", "saq_tasks.settings"]

    async def start(self) -> None:
        from saq import Queue

        self.queue = Queue.from_url(self.start_servers())
        await self.queue.connect()
        # SAQ routes every job's notifications through one pattern subscription, which it drops when nobody
        # listens; a listener kept open for the whole run keeps it, so no job's end falls between two of them.
        self.keeper = asyncio.create_task(self.queue.listen(["peers-keeper"], lambda *_: False, timeout=None))

    async def submit(self, argv: list[str]) -> asyncio.Future[Completion]:
        from saq import Job

        job = Job("run", kwargs={"argv": argv}, timeout=3600)
        ended = asyncio.ensure_future(self._end_of(job.key))
        await asyncio.sleep(0)  # the listener registers in its first step, before the job exists
        await self.queue.enqueue(job)
        return ended

    async def _end_of(self, key: str) -> Completion:
        from saq.job import TERMINAL_STATUSES, Status

        ends: list[Completion] = []

        def terminal(_key: str, status: Status) -> bool:
            if status in TERMINAL_STATUSES:
                ends.append(Completion(status == Status.COMPLETE, time.perf_counter()))
            return bool(ends)

        await self.queue.listen([key], terminal, timeout=None)
        return ends[0]

    async def stop(self) -> None:
        self.keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.keeper
        await self.queue.disconnect()
        self.stop_servers()


class CeleryQueue(RedisBacked):
    name = "celery"

    def worker_argv(self) -> list[str]:
        # Threads: a task here only waits for its subprocess; 100 prefork children would be the heavier choice.
        return [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool", "threads",
                "--concurrency", str(self.concurrency), "--without-heartbeat", "--without-gossip",
                "--without-mingle", "--loglevel", "WARNING"]

    async def start(self) -> None:
        from celery_tasks import make_app

        self.app = make_app(self.start_servers())
        self.loop = asyncio.get_running_loop()
        self.running = True
        # Celery's result consumer is driven by whoever waits; here one thread drains it for every job. The app
        # gives each thread its own backend, so the drainer is handed the one the jobs subscribe through.
        self.backend = self.app.backend
        self.drainer = threading.Thread(target=self._drain, name="celery-results", daemon=True)
        self.drainer.start()

    def _drain(self) -> None:
        consumer = self.backend.result_consumer
        while self.running:
            consumer.drain_events(timeout=0.2)

    async def submit(self, argv: list[str]) -> asyncio.Future[Completion]:
        from celery.result import AsyncResult

        ended: asyncio.Future[Completion] = self.loop.create_future()
        task_id = str(uuid.uuid4())
        result = AsyncResult(task_id, backend=self.backend, app=self.app)
        result.then(lambda done: self._ended(ended, done))  # subscribed before the task exists
        self.app.send_task("run", args=(argv,), task_id=task_id)
        return ended

    def _ended(self, ended: asyncio.Future[Completion], result: Any) -> None:
        end = Completion(result.successful() and result.result == 0, time.perf_counter())
        self.loop.call_soon_threadsafe(ended.set_result, end)

    async def stop(self) -> None:
        self.running = False
        await asyncio.to_thread(self.drainer.join, 5)
        self.stop_servers()


def _wait_for_redis(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not start")
