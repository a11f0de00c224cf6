"""Decides, at submit time, whether a job enters the queue and in which pool. Pure: no clock, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from xrunner.contracts.events import RejectCause, RejectScope
from xrunner.contracts.spec import JobSpec


@dataclass(frozen=True, slots=True)
class Admitted:
    pool: str
    position: int


@dataclass(frozen=True, slots=True)
class Rejected:
    cause: RejectCause
    scope: RejectScope
    retry_after_s: float
    detail: str


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """What admission looks at: how many jobs wait, globally and in the job's pool."""

    queued_total: int
    queued_in_pool: int
    max_queued_total: int


def admit(spec: JobSpec, snapshot: QueueSnapshot, default_pool: str) -> Admitted | Rejected:
    if snapshot.queued_total >= snapshot.max_queued_total:
        return Rejected(
            "global_queue_full",
            "global",
            5.0,
            f"{snapshot.queued_total} jobs are queued, the limit is {snapshot.max_queued_total}",
        )
    return Admitted(pool=spec.resources.pool or default_pool, position=snapshot.queued_in_pool + 1)
