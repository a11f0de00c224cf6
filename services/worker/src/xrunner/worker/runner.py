"""Runs one attempt: the fenced start, the sandboxed process under the worker's lease, its output, its deadline and
its outcome."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import structlog
from nats.aio.client import Client
from prometheus_client import Counter, Histogram

from xrunner.contracts import lifecycle
from xrunner.contracts.api import JobView
from xrunner.contracts.events import JobEvent, JobStarted
from xrunner.contracts.messages import RunJob
from xrunner.contracts.spec import JobSpec, Sandbox, is_interactive, workload_kind
from xrunner.servicekit.eventstore import PASSING, ConflictError, EventStore
from xrunner.servicekit.ids import new_id
from xrunner.worker.artifacts import Artifacts
from xrunner.worker.lease import Lease
from xrunner.worker.logstream import LogStream
from xrunner.worker.outcome import (
    KINDS,
    Cancelled,
    HandedBack,
    LeaseLapsed,
    Outcome,
    SandboxFailed,
    TimedOut,
    exit_outcome,
    outcome_event,
)
from xrunner.worker.sandbox import Launch, Running, SandboxError, Sandboxes
from xrunner.worker.settings import WorkerSettings
from xrunner.worker.stdin import fed_stdin
from xrunner.worker.trash import Trash

log = structlog.get_logger()

OUTCOMES = Counter("xrunner_worker_attempts_total", "Attempts finished by this worker", ["outcome"])
START_LATENCY = Histogram(
    "xrunner_worker_start_latency_seconds",
    "Dispatched to process started",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


StopWhy = Literal["cancel", "shutdown", "fenced"]


@dataclass
class Stop:
    """Asks a running attempt to stop: `why` is `cancel` (a user's request), `shutdown` (the worker's) or `fenced`
    (the lease lapsed since the attempt began at fence count `fences`: killed at once, nothing reported)."""

    event: asyncio.Event
    fences: int = 0
    why: StopWhy = "cancel"

    def set(self, why: StopWhy) -> None:
        if not self.event.is_set():
            self.why = why
            self.event.set()


class Fenced(Exception):
    """This attempt was superseded or the job already ended: this worker must not touch it."""


@dataclass
class Attempt:
    """Where one attempt's history stands, as far as this worker appended it."""

    run: RunJob
    last_seq: int
    fences: int = 0  # the reaper's fence count when the attempt began (lease.py)
    workspace: Path | None = None  # where the job actually ran (a sandbox may pick a warm workspace)


class Runner:
    def __init__(
        self,
        store: EventStore,
        sandboxes: Mapping[str, Sandboxes],
        settings: WorkerSettings,
        worker_id: str,
        artifacts: Artifacts,
        nc: Client,
        lease: Lease,
    ) -> None:
        """`sandboxes` maps a workload kind (`process`, `docker`) to the sandbox that runs it on this worker;
        `nc` (core NATS) feeds interactive jobs' stdin; a job's process runs only while `lease` is held."""
        self.store, self.sandboxes, self.settings, self.worker_id = store, sandboxes, settings, worker_id
        self.artifacts, self.nc, self.lease = artifacts, nc, lease
        self.trash = Trash()  # finished workspaces, removed off the loop (the worker runs `trash.run()`)
        self.workspaces = Path(settings.workspace_dir) / worker_id  # this worker's own (trash.py)

    def sandbox_name(self, spec: JobSpec) -> Sandbox:
        sandbox = self.sandboxes.get(workload_kind(spec.workload))
        return sandbox.name if sandbox is not None else "none"

    async def begin(self, run: RunJob) -> Attempt | None:
        """Append `job.started` only if the dispatch is still the job's latest fact (the fence). Returns None
        when this attempt must not run (superseded, finished, or cancelled before it started)."""
        attempt = Attempt(run, run.fence_seq, fences=self.lease.fences())  # counted before anything can run
        started = JobStarted(event_id=new_id(), occurred_at=datetime.now(UTC), tenant=run.tenant, job_id=run.job_id,
                             attempt=run.attempt, worker_id=self.worker_id, sandbox=self.sandbox_name(run.spec))
        try:
            await self.append(attempt, started, "started")
        except Fenced:
            return None
        except _CancelledFirst:
            await self.conclude(attempt, Cancelled(before_start=True), 0.0, counted=False)
            return None
        START_LATENCY.observe(max(0.0, time.time() - run.dispatched_at.timestamp()))
        log.info("attempt started", job_id=run.job_id, attempt=run.attempt, seq=attempt.last_seq)
        return attempt

    async def append(self, attempt: Attempt, event: JobEvent, kind: str) -> None:
        """Append one of this attempt's events with compare-and-set; on a conflict re-read the history and
        retry while the attempt is still current."""
        while True:
            try:
                appended = await self.store.append(
                    event, msg_id=f"{attempt.run.job_id}:{attempt.run.attempt}:{kind}", expect=attempt.last_seq
                )
                attempt.last_seq = appended.seq
                return
            except ConflictError:
                history = await self.store.history(attempt.run.tenant, attempt.run.job_id)
                view = lifecycle.replay(history)
                _check_current(view, attempt.run.attempt, starting=kind == "started")
                attempt.last_seq = history[-1][0]

    async def execute(self, attempt: Attempt, stop: Stop) -> None:
        """Run the started attempt to its end and append the outcome."""
        run = attempt.run
        workspace = self.workspaces / f"{run.job_id}-{run.attempt}"
        workspace.mkdir(parents=True, exist_ok=True)
        logs = LogStream(
            self.store.js,
            run.tenant,
            run.job_id,
            run.attempt,
            chunk_bytes=self.settings.log_chunk_bytes,
            flush_s=self.settings.log_flush_s,
            max_bytes=self.settings.max_log_bytes,
            max_line_bytes=self.settings.max_line_bytes,
            spool=workspace.with_name(f"{workspace.name}.log"),  # beside the workspace: out of the job's reach
        )
        began = time.monotonic()
        outcome: Outcome | None = None
        attempt.workspace = workspace
        try:
            outcome = await self._run(attempt, workspace, logs, stop)
        finally:
            used = attempt.workspace
            if isinstance(outcome, HandedBack | LeaseLapsed):
                await logs.write("system", _GIVEN_UP[type(outcome)])
            else:
                await self.artifacts.keep(run, used, logs, lambda event, kind: self.append(attempt, event, kind))
            if outcome is None:
                await logs.close()
            self.trash.add(*{workspace, used})
        assert outcome is not None
        # The log's end and the outcome go to different streams, and no reader needs one before the other (a log
        # reader follows to the end-of-log chunk): both are stored at once, one round trip instead of two.
        closing = asyncio.ensure_future(logs.close())
        try:
            await self.conclude(attempt, outcome, round(time.monotonic() - began, 6))
        finally:
            await closing
        if (sandbox := self.sandboxes.get(workload_kind(run.spec.workload))) is not None:
            sandbox.settled()

    async def conclude(self, attempt: Attempt, outcome: Outcome, duration_s: float, *, counted: bool = True) -> None:
        """Append the event `outcome` ends the attempt with (none when handed back), `counted` in the metric."""
        run = attempt.run
        event = outcome_event(outcome, run, duration_s=duration_s, event_id=new_id(), occurred_at=datetime.now(UTC))
        if event is None:
            log.info("attempt handed back" if isinstance(outcome, HandedBack) else "attempt fenced off: lease lapsed",
                     job_id=run.job_id, attempt=run.attempt)
            return
        kind = KINDS[type(event)]
        if counted:
            OUTCOMES.labels(kind).inc()
        try:
            stored = await until_stored(lambda: self.append(attempt, event, kind),
                                        lambda: self.lease.held(attempt.fences), job_id=run.job_id)
        except Fenced:
            log.warning("outcome fenced off", job_id=run.job_id, attempt=run.attempt, outcome=kind)
            return
        if not stored:  # the scheduler loses the attempt once the heartbeats stop listing it, and runs it again
            log.warning("outcome not appended before the lease lapsed", job_id=run.job_id, attempt=run.attempt,
                        outcome=kind)
            return
        log.info("attempt ended", job_id=run.job_id, attempt=run.attempt, outcome=kind, seq=attempt.last_seq)

    async def _run(self, attempt: Attempt, workspace: Path, logs: LogStream, stop: Stop) -> Outcome:
        spec = attempt.run.spec
        if not self.lease.held(attempt.fences):  # frozen or cut off since it began: it may run elsewhere by now
            return LeaseLapsed()
        try:
            sandbox = self.sandboxes.get(workload_kind(spec.workload))
            if sandbox is None:
                raise SandboxError(f"this worker cannot run {workload_kind(spec.workload)} workloads")
            proc = await sandbox.start(Launch(attempt.run.job_id, attempt.run.attempt, spec, workspace))
            attempt.workspace = proc.workspace
        except SandboxError as exc:
            await logs.write("system", f"[xrunner: {exc}]\n".encode())
            return SandboxFailed(str(exc))
        if not self.lease.held(attempt.fences):  # fenced while it was starting (perhaps not yet in its cgroups)
            stop.set("fenced")
        pumps = asyncio.gather(logs.pump(proc.stdout, "stdout"), logs.pump(proc.stderr, "stderr"))
        waiter = asyncio.ensure_future(self._wait(attempt, proc, logs))
        cancelled = asyncio.ensure_future(stop.event.wait())
        done, _ = await asyncio.wait({waiter, cancelled}, timeout=spec.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            await self._stop(proc, waiter, signal.SIGKILL if stop.why == "fenced" else signal.SIGTERM)
        cancelled.cancel()
        await pumps
        code = waiter.result()
        if self.lease.fenced(attempt.fences) or (cancelled in done and stop.why == "fenced"):
            return LeaseLapsed()
        if cancelled in done:
            return HandedBack() if stop.why == "shutdown" else Cancelled()
        return exit_outcome(code) if done else TimedOut()

    async def _wait(self, attempt: Attempt, proc: Running, logs: LogStream) -> int:
        """The job's exit status; meanwhile an interactive job's stdin is fed from `xr.stdin.<job_id>`."""
        if not is_interactive(attempt.run.spec.workload):
            return await proc.wait()
        async with fed_stdin(self.nc, proc, logs, attempt.run.job_id):
            return await proc.wait()

    async def _stop(self, proc: Running, waiter: asyncio.Future[int], first: signal.Signals) -> None:
        """Signal the whole process tree with `first` (SIGTERM), then SIGKILL after the grace period."""
        proc.signal_all(first)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.settings.kill_grace_s)
        except TimeoutError:
            proc.signal_all(signal.SIGKILL)
            await waiter
        proc.signal_all(signal.SIGKILL)  # stragglers that ignored SIGTERM or outlived the leader


_GIVEN_UP: dict[type[Outcome], bytes] = {
    HandedBack: b"\n[xrunner: the worker shut down; the job goes back to the queue]\n",
    LeaseLapsed: b"\n[xrunner: the worker's lease lapsed and the job was killed; it goes back to the queue]\n",
}


class _CancelledFirst(Exception):
    """A cancel request arrived between dispatch and start."""


def _check_current(view: JobView | None, attempt: int, *, starting: bool) -> None:
    """Raise Fenced unless `attempt` is still the job's live attempt (dispatched to start, running to end)."""
    if view is None or view.attempt != attempt:
        raise Fenced()
    if view.state != ("dispatched" if starting else "running"):
        raise Fenced()
    if starting and view.cancel_requested:
        raise _CancelledFirst()


async def until_stored(append: Callable[[], Awaitable[None]], held: Callable[[], bool], *, pause_s: float = 0.5,
                       max_pause_s: float = 5.0, job_id: str = "") -> bool:
    """Run `append` until it returns, again after each failure the log may get over (`PASSING`: an election longer
    than the store's own retries, a lost node's direct get), for as long as `held()` — the attempt's end must reach
    the log while this worker answers for the attempt. False once it no longer does; other errors propagate.

    Giving up earlier left a finished job `running` for good: the attempt had ended, the worker no longer listed it,
    but nothing said how it ended."""
    while True:
        try:
            await append()
            return True
        except PASSING as exc:
            if not held():
                return False
            log.warning("outcome not appended yet, trying again", job_id=job_id, error=repr(exc), in_s=pause_s)
        await asyncio.sleep(pause_s)
        pause_s = min(max_pause_s, pause_s * 2)
