"""The docker sandbox: a job runs in a container of its own, or as an exec in a warm container (warm.py), with no
privileges, no capabilities, no new privileges, a read-only root with a tmpfs /tmp, no network unless the job asks
and the operator allows it, pids/memory/cpu limits, as uid 65534. Docker SDK calls run on a bounded thread pool off
the event loop (engine.py); output and exits arrive over asyncio streams (daemon.py): a running job holds no thread.

The workspace is a host directory bind-mounted read-write at /workspace (the working directory) and chowned to
65534, not a tmpfs: a tmpfs would vanish with the container, and with it the artifacts, which the runner collects
from `Running.workspace` on the host after the job (and then removes the directory). A cold job gets the directory
the runner made; a warm container's is made with the container, before its job, and `Running.workspace` names it.

CPU is limited with a CFS period/quota rather than nano_cpus (the same thing to the kernel) because a warm
container, started with the default limits, is updated to its job's, and docker updates only period/quota."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import docker
import requests
import structlog
from docker.errors import DockerException, ImageNotFound
from docker.types import LogConfig

from xrunner.contracts.spec import DockerWorkload, JobSpec, Sandbox, is_interactive
from xrunner.worker.sandbox import Launch, SandboxError
from xrunner.worker.sandbox.docker.daemon import DaemonError
from xrunner.worker.sandbox.docker.engine import NOBODY, SDK_THREADS, USER, DockerRun, Engine
from xrunner.worker.sandbox.docker.warm import HOLDER, Warm, WarmPool, parse_warm_images
from xrunner.worker.sandbox.limits import CFS_PERIOD_US, Limits
from xrunner.worker.settings import WorkerSettings

log = structlog.get_logger()

WORKDIR = "/workspace"
READY_S = 10.0


def open_docker(settings: WorkerSettings, worker_id: str) -> DockerSandbox | None:
    """The docker sandbox; None when it is off or, with `docker=auto`, the daemon does not answer (with `on` the
    worker does not start). Connecting asks the daemon its API version: the one blocking call, at construction."""
    if settings.docker == "off":
        return None
    try:
        client = docker.DockerClient(base_url=settings.docker_url, max_pool_size=SDK_THREADS)
    except (DockerException, requests.RequestException) as exc:
        if settings.docker == "on":
            raise RuntimeError(f"XR_WORKER_DOCKER=on but the docker daemon at {settings.docker_url} does not "
                               f"answer: {exc}") from exc
        log.warning("no docker daemon: this worker runs no docker workloads", url=settings.docker_url, error=str(exc))
        return None
    return DockerSandbox(client, settings, worker_id)


class DockerSandbox:
    """Runs `docker` workloads: warm (an exec in a pooled container) when the image has a pool and the job neither
    asks for network nor to keep its container; cold (create and start with the job's argv) otherwise. Needs a
    running event loop: construction starts removing what a previous life of this worker left, then the pools."""

    name: Sandbox = "docker"

    def __init__(self, client: docker.DockerClient, settings: WorkerSettings, worker_id: str) -> None:
        self.engine = Engine(client, settings.docker_url, worker_id)
        self.api, self.call, self.exits = self.engine.api, self.engine.call, self.engine.exits
        self.worker_id, self.max_pids, self.pull = worker_id, settings.max_pids, settings.docker_pull
        self.allow_network = settings.allow_network
        self.workspaces = Path(settings.workspace_dir)
        self.pools = {image: WarmPool(image, size, self._make_warm, self._drop)
                      for image, size in parse_warm_images(settings.warm_images, settings.warm_pool_size).items()}
        self.images: dict[str, tuple[list[str], list[str]]] = {}
        self.closed = False
        self.begun = asyncio.get_running_loop().create_task(self._begin())

    async def start(self, launch: Launch) -> DockerRun:
        workload = launch.spec.workload
        if not isinstance(workload, DockerWorkload):
            raise SandboxError("this sandbox runs docker workloads only")
        await self._ready()
        limits = Limits.of(launch.spec, self.max_pids)
        network = workload.network and self.allow_network
        pool = None if network or workload.keep_container else self.pools.get(workload.image)
        warm = pool.take() if pool is not None else None
        if warm is not None:
            try:
                return await self._exec(warm, launch, workload, limits)
            except (DockerException, DaemonError, OSError) as exc:
                log.warning("warm container unusable; running cold", container_id=warm.container_id, error=str(exc))
                self._drop(warm)
        return await self._run(launch, workload, limits, network)

    def settled(self) -> None:
        """Nothing to do: each warm pool refills as soon as it hands out a container."""

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for pool in self.pools.values():
            await pool.close()
        with contextlib.suppress(DockerException, requests.RequestException):
            await self._sweep("xrunner.warm")
        self.begun.cancel()
        await self.engine.close()

    async def _run(self, launch: Launch, workload: DockerWorkload, limits: Limits, network: bool) -> DockerRun:
        """The cold path: a container for this job alone, attached before it starts so no output is missed."""
        _own(launch.workspace)
        labels = {"xrunner.worker": self.worker_id, "xrunner.job": launch.job_id,
                  "xrunner.attempt": str(launch.attempt)}
        if workload.keep_container:
            labels["xrunner.keep"] = "1"
        interactive = is_interactive(workload)
        container_id = await self._create(
            workload.image, workload.argv or None, labels=labels, environment=_env(launch, workload),
            stdin_open=interactive, tty=workload.tty,
            host_config=self._host_config(launch.workspace, limits, network=network, cold=True,
                                          keep=workload.keep_container),
        )
        died = self.exits.expect(container_id)
        try:
            query = f"stream=1&stdout=1&stderr=1&stdin={int(interactive)}"
            stdio = await self.engine.daemon.open("POST", f"/containers/{container_id}/attach?{query}", upgrade=True)
        except (DaemonError, OSError) as exc:
            self.engine.remove(container_id)
            raise SandboxError(f"cannot attach to the job's container: {exc}") from exc
        try:
            await self.call(self.api.start, container_id)
        except DockerException as exc:
            stdio[1].close()
            self.engine.remove(container_id)
            raise SandboxError(f"docker could not start the container: {_reason(exc)}") from exc
        return DockerRun(self.engine, container_id, None, stdio, died, launch.workspace, workload)

    async def _exec(self, warm: Warm, launch: Launch, workload: DockerWorkload, limits: Limits) -> DockerRun:
        """The warm path: the job's argv as an exec in a container started ahead, given the job's limits first."""
        if (limits.memory_bytes, limits.cpu_millis) != (warm.memory_bytes, warm.cpu_millis):
            await self.call(self.api.update_container, warm.container_id, mem_limit=limits.memory_bytes,
                            memswap_limit=limits.memory_bytes, cpu_period=CFS_PERIOD_US,
                            cpu_quota=limits.cfs_quota_us())
        created = await self.call(
            self.api.exec_create, warm.container_id, warm.argv(workload.argv), stdin=is_interactive(workload),
            tty=workload.tty, user=USER, environment=_env(launch, workload), workdir=WORKDIR,
        )
        exited = self.exits.expect(created["Id"])
        try:
            body = {"Detach": False, "Tty": workload.tty}
            stdio = await self.engine.daemon.open("POST", f"/exec/{created['Id']}/start", body, upgrade=True)
        except BaseException:
            self.exits.forget(created["Id"])
            raise
        return DockerRun(self.engine, warm.container_id, created["Id"], stdio, warm.died, warm.workspace, workload,
                         exited)

    async def _make_warm(self, image: str) -> Warm:
        """Start one warm container with the limits of a job of default resources, its workspace ready."""
        entrypoint, cmd = await self._image_config(image)
        limits = Limits.of(JobSpec(workload=DockerWorkload(image=image)), self.max_pids)
        workspace = self.workspaces / f"warm-{uuid.uuid4().hex}"
        workspace.mkdir(parents=True)
        _own(workspace)
        container_id = None
        try:
            container_id = await self._create(
                image, HOLDER, entrypoint=[], labels={"xrunner.worker": self.worker_id, "xrunner.warm": "1"},
                host_config=self._host_config(workspace, limits, network=False, cold=False, keep=False),
            )
            died = self.exits.expect(container_id)
            await self.call(self.api.start, container_id)
        except BaseException:
            if container_id is not None:
                self.engine.remove(container_id)
            shutil.rmtree(workspace, ignore_errors=True)
            raise
        return Warm(container_id, workspace, died, entrypoint, cmd, limits.memory_bytes, limits.cpu_millis)

    async def _image_config(self, image: str) -> tuple[list[str], list[str]]:
        if image not in self.images:
            config = (await self.call(self.api.inspect_image, image)).get("Config") or {}
            self.images[image] = (config.get("Entrypoint") or [], config.get("Cmd") or [])
        return self.images[image]

    async def _create(self, image: str, command: list[str] | None, **config: Any) -> str:
        create = partial(self.api.create_container, image, command, user=USER, working_dir=WORKDIR,
                         hostname="xrunner", **config)
        try:
            try:
                return str((await self.call(create))["Id"])
            except ImageNotFound:
                if not self.pull:
                    raise SandboxError(f"image {image!r} not found on this worker; load it there (docker load) or "
                                       "let the worker pull images (XR_WORKER_DOCKER_PULL=true)") from None
                await self.call(self.api.pull, image)
                return str((await self.call(create))["Id"])
        except DockerException as exc:
            raise SandboxError(f"docker could not create a container of {image!r}: {_reason(exc)}") from exc

    def _host_config(self, workspace: Path, limits: Limits, *, network: bool, cold: bool, keep: bool
                     ) -> dict[str, Any]:
        """A cold container's PID 1 is docker-init (it reaps, and forwards signals to the job); a warm one's is the
        holder. Only a kept container keeps a log (`docker logs`): the job's output already went to the worker."""
        config: dict[str, Any] = self.api.create_host_config(
            binds={str(workspace): {"bind": WORKDIR, "mode": "rw"}},
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,mode=1777"},
            privileged=False,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            network_mode="bridge" if network else "none",
            pids_limit=limits.max_pids,
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,
            cpu_period=CFS_PERIOD_US,
            cpu_quota=limits.cfs_quota_us(),
            init=cold,
            log_config=None if keep else LogConfig(type=LogConfig.types.NONE),
        )
        return config

    def _drop(self, warm: Warm) -> None:
        self.engine.remove(warm.container_id)
        shutil.rmtree(warm.workspace, ignore_errors=True)

    async def _begin(self) -> None:
        """Remove the containers a previous life of this worker left (like the process sandbox's stale cgroups),
        then follow the daemon's events and fill the warm pools."""
        removed = await self._sweep()
        await self.engine.follow()
        for pool in self.pools.values():
            pool.start()
        log.info("docker sandbox ready", stale_containers_removed=removed,
                 warm={p.image: p.size for p in self.pools.values()}, network_allowed=self.allow_network)

    async def _ready(self) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self.begun), READY_S)
            await asyncio.wait_for(self.exits.connected.wait(), READY_S)
        except (TimeoutError, DockerException, requests.RequestException, OSError) as exc:
            raise SandboxError(f"the docker daemon is not answering: {exc!r}") from exc

    async def _sweep(self, *labels: str) -> int:
        """Remove this worker's containers with `labels` (kept ones excepted), and the warm ones' workspaces."""
        doomed = await self.call(left_behind, self.api, self.worker_id, *labels)
        await asyncio.gather(*(self.call(self.api.remove_container, c["Id"], force=True, v=True) for c in doomed),
                             return_exceptions=True)
        for container in doomed:
            if "xrunner.warm" in container["Labels"]:
                for mount in container.get("Mounts") or []:
                    if Path(mount.get("Source", "/")).parent == self.workspaces:
                        shutil.rmtree(mount["Source"], ignore_errors=True)
        return len(doomed)


def left_behind(api: docker.APIClient, worker_id: str, *labels: str) -> list[dict[str, Any]]:
    """The containers of `worker_id` with `labels`, except the ones a job asked to keep (blocking)."""
    found: list[dict[str, Any]] = api.containers(all=True, filters={"label": [f"xrunner.worker={worker_id}", *labels]})
    return [c for c in found if "xrunner.keep" not in (c.get("Labels") or {})]


def remove_left_containers(docker_url: str, worker_id: str) -> int:
    """For the reaper, once the worker died: remove its containers (kept ones excepted), blocking."""
    try:
        api = docker.APIClient(base_url=docker_url, timeout=30)
        doomed = left_behind(api, worker_id)
        for container in doomed:
            with contextlib.suppress(DockerException, requests.RequestException):
                api.remove_container(container["Id"], force=True, v=True)
    except (DockerException, requests.RequestException) as exc:
        log.warning("the dead worker's containers were not removed", worker_id=worker_id, error=str(exc))
        return 0
    return len(doomed)


def kill_running_containers(docker_url: str, worker_id: str) -> int:
    """For the reaper's fence: SIGKILL every running container of `worker_id` (jobs', kept and warm ones alike: a
    warm one may be running a job), blocking; the worker removes them as they die. Returns how many."""
    try:
        api = docker.APIClient(base_url=docker_url, timeout=30)
        running = api.containers(filters={"label": [f"xrunner.worker={worker_id}"]})
        for container in running:
            with contextlib.suppress(DockerException, requests.RequestException):
                api.kill(container["Id"])
    except (DockerException, requests.RequestException) as exc:
        log.warning("the fenced worker's containers were not killed", worker_id=worker_id, error=str(exc))
        return 0
    return len(running)


def _env(launch: Launch, workload: DockerWorkload) -> dict[str, str]:
    return {"HOME": WORKDIR, "XR_JOB_ID": launch.job_id, "XR_ATTEMPT": str(launch.attempt), **workload.env}


def _own(workspace: Path) -> None:
    """The job runs as 65534; a worker that may not chown (not root) opens the directory to everyone instead."""
    try:
        os.chown(workspace, NOBODY, NOBODY)
    except PermissionError:
        workspace.chmod(0o777)


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "explanation", None) or exc)
