"""Why the scheduler dispatched a job when and where it did: the inputs of the fair plan and of placement at that
moment, recorded in `job.dispatched` (Nomad's allocation metrics are the model: what was evaluated, what was
filtered by a constraint, what was exhausted in which dimension)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

PoolOutcome = Literal["chosen", "passed", "exhausted", "filtered"]


class Standing(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant as the fair plan ranked it when a pick was made: the smaller `rank_share` goes first, and a tenant
    with nothing in flight (`idle`) goes before any other.

    `running_share` is the dominant share (the largest of cpu, memory and gpu) of its dispatched and running jobs
    in the live capacity, counting the picks made earlier in the same round; `usage_share` is half the dominant
    share of its decayed recent usage (resource-seconds with a 300 s half-life, per second of half-life);
    `rank_share` = (running_share + usage_share) / weight."""

    tenant: str
    idle: bool
    rank_share: float
    running_share: float
    usage_share: float
    weight: float
    inflight: int
    max_inflight: int
    queued: int


class PoolFit(msgspec.Struct, frozen=True, kw_only=True):
    """One pool placement evaluated for the job: its shape (its smallest live worker), its slots and the free ones
    when the round began, and what placement made of it: `dimension` names the constraint that filtered it or the
dimension it was exhausted in, `reason` says it in a sentence."""

    pool: str
    workers: int
    slots: int
    free: int
    cpu_millis: int
    memory_mib: int
    gpu: int
    workloads: list[str] = msgspec.field(default_factory=list)
    outcome: PoolOutcome = "passed"
    dimension: str = ""
    reason: str = ""


class DispatchWhy(msgspec.Struct, frozen=True, kw_only=True):
    """The inputs and the outcome of the decision that dispatched this attempt.

    `basis`: the log position the scheduler's state had folded (its own later decisions and the submissions it
    already saw apply on top). `rank` of `picks`: the order of this pick in its dispatch round. `queue_position`:
    the job's place in its tenant's queue (priority, then FIFO) when picked; past 1 the jobs ahead could not start
    (backfill). `competing`: the other tenants with queued jobs, in the order the plan would serve them next (at
    most `COMPETING_KEPT`; `competing_more` counts the rest). `filtered` counts the pools left out by a constraint
    (`pool`, `workload`, `gpu_reserved`), `exhausted` the pools without room by dimension (`cpu`, `memory`, `gpu`,
    `slots`)."""

    basis: int = 0
    rank: int = 1
    picks: int = 1
    tenant: Standing
    competing: list[Standing] = msgspec.field(default_factory=list)
    competing_more: int = 0
    queue_position: int = 1
    pools_evaluated: int = 0
    workers_evaluated: int = 0
    filtered: dict[str, int] = msgspec.field(default_factory=dict)
    exhausted: dict[str, int] = msgspec.field(default_factory=dict)
    pools: list[PoolFit] = msgspec.field(default_factory=list)


COMPETING_KEPT = 8


# --- the API's answer to GET /v1/jobs/{job_id}/decisions -------------------------------------------------------------


class WentBefore(msgspec.Struct, frozen=True, kw_only=True):
    """A job dispatched while this one waited, and why it went first. Another tenant's job is shown without its
    name or id to a caller who is not an admin."""

    seq: int
    at: datetime
    tenant: str
    job_id: str | None = None
    pool: str
    reason: str


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """One decision the scheduler recorded about the job (`kind`: queued, rejected, dispatched, retry_scheduled,
    lost, expired, timed_out, cancelled, abandoned), with its inputs when it is a dispatch."""

    seq: int
    at: datetime
    kind: str
    attempt: int
    summary: str
    waited_s: float | None = None  # for a dispatch: since the attempt entered the queue
    why: DispatchWhy | None = None
    went_before: list[WentBefore] = msgspec.field(default_factory=list)
    went_before_more: int = 0


class QueuedAhead(msgspec.Struct, frozen=True, kw_only=True):
    """A job of the caller's tenant ahead of this one in the queue, as the scheduler last published it."""

    job_id: str
    position: int
    reason: str


class JobDecisions(msgspec.Struct, kw_only=True):
    """Why the job ran when and where it did (its recorded decisions), and, while it waits, what is ahead of it."""

    job_id: str
    state: str
    decisions: list[Decision] = msgspec.field(default_factory=list)
    waiting_reason: str | None = None
    waiting_detail: str = ""
    position: int | None = None
    ahead: list[QueuedAhead] = msgspec.field(default_factory=list)
