"""Messages that are not events: work items, log chunks, heartbeats and snapshots."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from xrunner.contracts.spec import JobSpec


class RunJob(msgspec.Struct, frozen=True, kw_only=True):
    """A work item on `xr.run.<pool>`: run attempt `attempt` of a job.

    `fence_seq` is the stream sequence of the `job.dispatched` event; the worker's `job.started` append must find
    it as the job's last event, so a superseded attempt can never start.
    """

    tenant: str
    job_id: str
    attempt: int
    spec: JobSpec
    fence_seq: int
    dispatched_at: datetime
    retries_used: int = 0


class LogChunk(msgspec.Struct, frozen=True, kw_only=True):
    """A piece of a job's output on `xr.log.<tenant>.<job_id>`; `seq` counts chunks of the attempt from 1."""

    job_id: str
    attempt: int
    seq: int
    stream: Literal["stdout", "stderr", "system"]
    offset: int
    data: bytes
    eof: bool = False


class WorkerHeartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """What a live worker advertises in KV `xr_workers` (key = worker id) every beat."""

    worker_id: str
    pool: str
    slots: int
    free_slots: int
    cpu_millis: int
    memory_mib: int
    gpu: int
    running: list[str] = msgspec.field(default_factory=list)
    version: str = ""
    sandbox: str = "process"
    workloads: list[str] = msgspec.field(default_factory=lambda: ["process"])  # the workload kinds it can run
    draining: bool = False
    at: datetime | None = None
