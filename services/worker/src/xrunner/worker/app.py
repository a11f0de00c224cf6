"""Wires the worker: heartbeats that renew its lease (on a thread of their own, `beat.py`), the pull loop over
`xr.run.<pool>`, cancel requests, and draining on stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import Gauge

from xrunner.contracts import codec, subjects
from xrunner.contracts.events import WorkerStarted, WorkerStopped
from xrunner.contracts.messages import RunJob, WorkerHeartbeat
from xrunner.servicekit import tracing
from xrunner.servicekit.consumer import DEAD_LETTERS, durable
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.http import HttpServer, health_app
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.live import LiveFeed
from xrunner.servicekit.pull import pull
from xrunner.servicekit.runtime import Runtime
from xrunner.worker.artifacts import Artifacts
from xrunner.worker.beat import Heartbeat
from xrunner.worker.lease import Lease, fence_marker
from xrunner.worker.objectstore import open_store
from xrunner.worker.reaper import Reaper, exclusive
from xrunner.worker.runner import Runner, Stop
from xrunner.worker.sandbox import Sandboxes
from xrunner.worker.sandbox.docker.sandbox import open_docker
from xrunner.worker.sandbox.process.sandbox import ProcessSandbox
from xrunner.worker.settings import WorkerSettings
from xrunner.worker.trash import leftovers, remove

log = structlog.get_logger()
RUNNING = Gauge("xrunner_worker_running_jobs", "Attempts running on this worker")
VERSION = "0.1.0"
WORK_ITEM_ACK_WAIT_S = 5.0


def run_queue_consumer(pool: str) -> ConsumerConfig:
    """The pool's work queue. A worker acks a work item as soon as its attempt has started (or was fenced off), so
    the ack wait only covers that step: an item whose worker died holding it goes to another worker within seconds
    (a second delivery of an item whose attempt did start is fenced off)."""
    return ConsumerConfig(durable_name=f"worker_{pool}", ack_policy=AckPolicy.EXPLICIT,
                          ack_wait=WORK_ITEM_ACK_WAIT_S, max_deliver=10, filter_subject=subjects.run_queue(pool))


class Worker:
    def __init__(self, nc: Client, settings: WorkerSettings, worker_id: str) -> None:
        self.nc, self.js = nc, nc.jetstream(timeout=10.0)
        self.settings, self.worker_id = settings, worker_id
        self.lease = Lease(settings.fence_after_s, fence_marker(Path(settings.workspace_dir), worker_id))
        self.store = EventStore(self.js)
        self.sandbox = ProcessSandbox(settings.sandbox, settings.allow_network, worker_id=worker_id,
                                      max_pids=settings.max_pids, warm_shells=min(settings.warm_shells, settings.slots),
                                      home=Path(settings.workspace_dir),
                                      workspaces=Path(settings.workspace_dir) / worker_id)
        self.objects = open_store(settings)
        self.sandboxes: dict[str, Sandboxes] = {"process": self.sandbox}
        if (docker := open_docker(settings, worker_id)) is not None:
            self.sandboxes["docker"] = docker
        self.runner = Runner(self.store, self.sandboxes, settings, worker_id, Artifacts(self.objects, settings), nc,
                             self.lease)
        self.busy = 0
        self.slot_free = asyncio.Event()
        self.slot_free.set()
        self.running: dict[str, Stop] = {}
        self.stops: dict[str, Stop] = {}  # what a cancel request stops: from before an attempt begins to its end
        self.cancels = LiveFeed(self.js, [subjects.job_events(token="cancel_requested")], self.cancel_requested)
        self.tasks: set[asyncio.Task[None]] = set()
        self.draining = False

    async def pull(self) -> None:
        """Take at most as many work items as there are free slots, so the slot count is a hard cap."""
        sub = await durable(self.js, subjects.RUN_STREAM, run_queue_consumer(self.settings.pool))
        while not self.draining:
            await self.slot_free.wait()
            if not self.lease.fresh():  # no work without a lease: the reaper would kill it
                await asyncio.sleep(self.settings.heartbeat_s / 4)
                continue
            free = self.settings.slots - self.busy
            try:
                msgs = await pull(sub, min(free, 64), 1.0)
            except TimeoutError:  # the server never ended the pull: pull again
                continue
            for msg in msgs:
                self._take_slot()
                task = asyncio.create_task(self._attempt(msg))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    def _take_slot(self) -> None:
        self.busy += 1
        if self.busy >= self.settings.slots:
            self.slot_free.clear()

    def _free_slot(self) -> None:
        self.busy -= 1
        self.slot_free.set()

    async def _attempt(self, msg: Msg) -> None:
        with tracing.span(tracing.of(msg.headers)):  # the job's trace, from the scheduler's work item
            try:
                await self._run_item(msg)
            except Exception:
                log.exception("attempt crashed")
                with contextlib.suppress(Exception):
                    await msg.nak(delay=1.0)
            finally:
                self._free_slot()

    async def _run_item(self, msg: Msg) -> None:
        try:
            run = codec.decode(msg.data, RunJob)
        except (msgspec.DecodeError, msgspec.ValidationError):
            DEAD_LETTERS.labels(f"worker_{self.settings.pool}").inc()
            log.error("undecodable work item terminated", subject=msg.subject)
            await msg.term()
            return
        if not self.lease.fresh():  # lapsed since the fetch: leave the item to a worker that holds its lease
            await msg.nak(delay=self.settings.heartbeat_s)
            return
        stop = Stop(asyncio.Event())  # a cancel stored from now on stops it (a second delivery leaves the first's)
        registered = self.stops.setdefault(run.job_id, stop) is stop
        try:
            attempt = await self.runner.begin(run)
            await msg.ack()
            if attempt is None:
                return
            stop.fences = attempt.fences
            self.running[run.job_id] = stop
            RUNNING.inc()
            try:
                await self.runner.execute(attempt, stop)
            finally:
                RUNNING.dec()
                self.running.pop(run.job_id, None)
        finally:
            if registered:
                del self.stops[run.job_id]

    def cancel_requested(self, seq: int, msg: Msg) -> None:
        """A `job.cancel_requested` the log stored (from the cancel feed): stop the job if it runs or starts here.
        A request stored before its attempt started is caught by the start itself (`runner.begin`)."""
        stop = self.stops.get(subjects.parse_job_event(msg.subject).job_id)
        if stop is not None:
            with tracing.span(tracing.of(msg.headers)):
                log.info("cancel requested", job_id=subjects.parse_job_event(msg.subject).job_id, seq=seq)
            stop.set("cancel")

    def heartbeat(self) -> WorkerHeartbeat:
        s = self.settings
        return WorkerHeartbeat(
            worker_id=self.worker_id,
            pool=s.pool,
            slots=s.slots,
            free_slots=max(0, s.slots - len(self.running)),
            cpu_millis=s.cpu_millis or (os.cpu_count() or 1) * 1000,
            memory_mib=s.memory_mib or _memory_mib(),
            gpu=s.gpu,
            running=sorted(self.running),
            version=VERSION,
            sandbox=self.sandbox.name,
            workloads=sorted(self.sandboxes),
            draining=self.draining,
            at=datetime.now(UTC),
        )

    def stop_fenced(self) -> None:
        """After each heartbeat: stop the attempts the reaper fenced (their processes should be dead already; this
        catches any it missed)."""
        for stop in self.running.values():
            if self.lease.fenced(stop.fences):
                stop.set("fenced")

    async def drain(self) -> bool:
        """Stop pulling, let running attempts finish within the grace period, then stop them and hand them back
        (the scheduler requeues them as soon as this worker's heartbeat is deleted). True when every attempt ended."""
        self.draining = True
        _, pending = await asyncio.wait(self.tasks, timeout=self.settings.drain_grace_s) if self.tasks else ((), ())
        for stop in self.running.values():
            stop.set("shutdown")
        if pending:
            _, pending = await asyncio.wait(pending, timeout=self.settings.kill_grace_s + 5)
        return not pending


def _memory_mib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def use_pidfd_child_watcher() -> bool:
    """Watch children with pidfds (one fd each, no thread per child) where the kernel has them, so spawning
    keeps up with a thousand concurrent jobs; else keep asyncio's default watcher. (Under uvloop, the default
    for services, libuv reaps children itself and no watcher is needed.)"""
    if not isinstance(asyncio.get_running_loop(), asyncio.SelectorEventLoop):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(asyncio.get_running_loop())
        asyncio.set_child_watcher(watcher)
    return True


async def start(runtime: Runtime) -> Callable[[], Awaitable[None]]:
    settings = runtime.settings
    assert isinstance(settings, WorkerSettings)
    settings.check_lease()
    pidfd = use_pidfd_child_watcher()
    worker_id = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}".lower().replace(".", "-")
    js = await runtime.connect_nats()
    lock_dir = Path(settings.workspace_dir)
    with exclusive(lock_dir, worker_id):  # a reaper of this id's previous life finishes first
        worker = Worker(runtime.nc, settings, worker_id)  # the sandboxes kill what a previous life left
        left = leftovers(worker.runner.workspaces)
    if left:  # before any attempt: every one of them had started, so none is run again under its name
        await asyncio.to_thread(remove, left)
        log.info("removed what a previous life left in its workspaces", entries=len(left))
    reaper = Reaper(worker_id, lock_dir, settings.fence_after_s,
                    settings.docker_url if "docker" in worker.sandboxes else None)
    worker.lease.watchdog = reaper.renewed
    log.info("worker starting", worker_id=worker_id, pool=settings.pool, slots=settings.slots,
             sandbox=worker.sandbox.name, pidfd_child_watcher=pidfd, lease_s=settings.lease_s,
             fence_after_s=settings.fence_after_s)
    if not worker.sandbox.cgroups.controllers:
        log.warning("no job cgroups here: a lapsed lease cannot kill process jobs before the scheduler reruns them")
    if worker.sandbox.name == "none":
        log.warning("running process jobs UNSANDBOXED, as XR_WORKER_SANDBOX=none asks")
    store = worker.store
    await store.append(
        WorkerStarted(
            event_id=new_id(),
            occurred_at=datetime.now(UTC),
            worker_id=worker_id,
            pool=settings.pool,
            slots=settings.slots,
            version=VERSION,
        ),
        msg_id=f"worker:{worker_id}:started:{new_id()}",
    )
    await worker.cancels.start()
    heartbeat = Heartbeat(settings.nats_url, worker_id, settings.heartbeat_s, worker.heartbeat, worker.lease.renewed,
                          worker.stop_fenced)
    await heartbeat.start()
    runtime.spawn(worker.runner.trash.run(), "workspace removal")
    worker.sandbox.warm_up()
    pulling = runtime.spawn(worker.pull(), "pull")
    server = HttpServer(health_app(runtime.ready, settings.metrics_token), settings.http_host, settings.http_port)
    runtime.http_port = await server.start()

    async def stop() -> None:
        pulling.cancel()
        clean = await worker.drain()
        await worker.cancels.stop()
        await asyncio.to_thread(heartbeat.stop)  # none after the goodbye below
        if runtime.nc.is_connected:  # best effort: the heartbeat's TTL covers a worker that cannot say goodbye
            with contextlib.suppress(Exception):
                kv = await js.key_value(subjects.WORKERS_BUCKET)
                await asyncio.wait_for(kv.delete(worker_id), 2.0)
                stopped = WorkerStopped(
                    event_id=new_id(), occurred_at=datetime.now(UTC), worker_id=worker_id, reason="shutdown"
                )
                await asyncio.wait_for(store.append(stopped, msg_id=f"worker:{worker_id}:stopped:{new_id()}"), 2.0)
        await worker.runner.trash.empty()
        await worker.objects.close()
        for sandbox in worker.sandboxes.values():
            await sandbox.close()
        reaper.stop(clean)
        await server.stop()

    return stop
