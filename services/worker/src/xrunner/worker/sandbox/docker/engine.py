"""The docker daemon as the docker sandbox drives it once a job runs: SDK calls on a bounded thread pool (never on
the event loop), signals, the end and removal of a job's container, and `DockerRun`, one started job.

Signals: SIGKILL kills the container's PID 1 and with it, by the kernel's pid-namespace rule, every process of the
job, double-forked setsid children included. A polite signal goes, in a cold container, to docker-init (PID 1), which
forwards it to the job's main process as `docker stop` does; in a warm one, to every process of the job (an exec'd
`kill -1`, which spares the holder at PID 1). An exit by signal N reads -N when this worker sent N or the OOM killer
struck, and 128+N (as docker reports it) otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import docker
import requests
import structlog
from docker.errors import DockerException, NotFound

from xrunner.contracts.spec import DockerWorkload, is_interactive
from xrunner.worker.sandbox import STDIN_BACKLOG
from xrunner.worker.sandbox.docker.daemon import Daemon, Exits, pump

log = structlog.get_logger()
T = TypeVar("T")

NOBODY = 65534
USER = f"{NOBODY}:{NOBODY}"
SDK_THREADS = 16
KILL_WAIT_S = 10.0


class Engine:
    """One docker client of the worker: its threads, its streams (daemon.py) and its background calls."""

    def __init__(self, client: docker.DockerClient, url: str, worker_id: str) -> None:
        self.client, self.api = client, client.api
        self.threads = ThreadPoolExecutor(SDK_THREADS, thread_name_prefix="docker")
        self.daemon = Daemon(url, self.api.api_version)
        self.exits = Exits(self.daemon, worker_id)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.feed: asyncio.Task[None] | None = None

    async def follow(self) -> None:
        """Follow the daemon's events from now on (exits are known only to those who listen before they happen)."""
        self.feed = asyncio.get_running_loop().create_task(self.exits.run())
        await self.exits.connected.wait()

    async def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """A (blocking) docker SDK call, on the engine's threads."""
        return await asyncio.get_running_loop().run_in_executor(self.threads, partial(fn, *args, **kwargs))

    def later(self, work: Coroutine[Any, Any, object]) -> asyncio.Task[Any]:
        """Run `work` in the background; a docker error only matters to the log (a container that already went)."""

        async def logged() -> object:
            try:
                return await work
            except (DockerException, requests.RequestException) as exc:
                log.debug("docker call failed", error=str(exc))
                return None

        task = asyncio.get_running_loop().create_task(logged())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def kill(self, container_id: str, sig: int) -> None:
        try:
            await self.call(self.api.kill, container_id, sig)
        except (NotFound, requests.ConnectionError):  # gone, or the daemon with it: no death will be reported
            self.exits.resolve(container_id, 128 + sig)
        except DockerException as exc:  # not running any more: its death is on its way
            log.debug("docker kill failed", container_id=container_id, error=str(exc))

    async def signal_inside(self, container_id: str, sig: int) -> None:
        """Signal every process of a warm container's job: `kill -1` spares PID 1 (the holder) and itself."""
        argv = ["sh", "-c", f"kill -s {signal.Signals(sig).name.removeprefix('SIG')} -1"]
        exec_id = (await self.call(self.api.exec_create, container_id, argv, user=USER))["Id"]
        await self.call(self.api.exec_start, exec_id, detach=True)

    async def finish(self, run: DockerRun) -> None:
        """Make sure nothing of the job runs any more, then remove its container in the background, or leave it
        stopped when the job asked to keep it. A warm container outlives its exec: freezing it (~20 ms) stops what
        the job left behind sooner than a kill, which waits for the container's teardown (~60 ms)."""
        if not run.died.done() and not await self._frozen(run.container_id):
            await self.kill(run.container_id, signal.SIGKILL)
            try:
                await asyncio.wait_for(asyncio.shield(run.died), KILL_WAIT_S)
            except TimeoutError:
                log.warning("container outlived SIGKILL", container_id=run.container_id)
        if run.keep:
            self.exits.forget(run.container_id)
            log.info("kept the job's container", container_id=run.container_id)
        else:
            self.remove(run.container_id)

    def remove(self, container_id: str) -> None:
        self.exits.forget(container_id)
        self.later(self.call(self.api.remove_container, container_id, force=True, v=True))

    async def close(self) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=KILL_WAIT_S)
        if self.feed is not None:
            self.feed.cancel()
        self.threads.shutdown(wait=False)
        self.client.close()

    async def _frozen(self, container_id: str) -> bool:
        try:
            await self.call(self.api.pause, container_id)
        except DockerException:  # no freezer cgroup, or it just died
            return False
        return True


class DockerRun:
    """A started job: a cold container, or an exec in a warm one. `wait` returns once nothing of the job runs any
    more; the container is then removed in the background (or, with `keep_container`, left stopped)."""

    def __init__(
        self,
        engine: Engine,
        container_id: str,
        exec_id: str | None,
        stdio: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        died: asyncio.Future[int],
        workspace: Path,
        workload: DockerWorkload,
        exited: asyncio.Future[int] | None = None,
    ) -> None:
        self.engine, self.container_id, self.exec_id, self.workspace = engine, container_id, exec_id, workspace
        self.died, self.exited = died, exited or died
        self.tty, self.keep = workload.tty, workload.keep_container
        self.stdin_open = is_interactive(workload)
        self.stdout, self.stderr = asyncio.StreamReader(), asyncio.StreamReader()
        reader, self.writer = stdio
        self.pumping = engine.later(pump(reader, self.stdout, self.stderr, tty=self.tty))
        self.pumping.add_done_callback(lambda _: self.writer.close())
        self.signalled: int | None = None
        self.ending: asyncio.Task[int] | None = None

    async def wait(self) -> int:
        if self.ending is None:
            self.ending = asyncio.get_running_loop().create_task(self._end())
        return await asyncio.shield(self.ending)

    def signal_all(self, sig: int) -> None:
        self.signalled = sig
        if sig == signal.SIGKILL or self.exec_id is None:
            self.engine.later(self.engine.kill(self.container_id, sig))
        else:
            self.engine.later(self.engine.signal_inside(self.container_id, sig))

    def write_stdin(self, data: bytes) -> bool:
        if not self.stdin_open or self.writer.is_closing():
            return True
        if self.writer.transport.get_write_buffer_size() + len(data) > STDIN_BACKLOG:
            return False
        self.writer.write(data)
        return True

    def close_stdin(self) -> None:
        if self.stdin_open and not self.writer.is_closing():
            self.stdin_open = False
            with contextlib.suppress(OSError):
                self.writer.write_eof()  # the daemon then closes the job's stdin (StdinOnce / exec's CloseStdin)

    def resize(self, rows: int, cols: int) -> None:
        if not self.tty:
            return
        if self.exec_id is not None:
            self.engine.later(self.engine.call(self.engine.api.exec_resize, self.exec_id, height=rows, width=cols))
        else:
            self.engine.later(self.engine.call(self.engine.api.resize, self.container_id, rows, cols))

    async def _end(self) -> int:
        code = await self._exit_code()
        killed = code - 128
        oom = killed == signal.SIGKILL and self.container_id in self.engine.exits.oom
        await self.engine.finish(self)
        return -killed if killed > 0 and (killed == self.signalled or oom) else code

    async def _exit_code(self) -> int:
        """A cold job's exit is its container's; a warm job's is its exec's, or its container's if that died first.
        An exec that never started (no such executable) has no event: the end of its stream says to ask."""
        waiting: set[asyncio.Future[Any]] = {self.exited, self.died}
        if self.exec_id is not None:
            waiting.add(self.pumping)
        while not (self.exited.done() or self.died.done()):
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if self.pumping in done and self.exec_id is not None:
                with contextlib.suppress(DockerException, requests.RequestException):
                    info = await self.engine.call(self.engine.api.exec_inspect, self.exec_id)
                    if not info["Running"] and info["ExitCode"] is not None:
                        self.engine.exits.resolve(self.exec_id, info["ExitCode"])
        return self.exited.result() if self.exited.done() else self.died.result()
