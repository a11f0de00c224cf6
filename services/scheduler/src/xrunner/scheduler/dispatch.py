"""Decides which queued jobs are released to which pool now. Pure: no clock, no I/O.

A pool's free capacity is its live workers' slots minus its jobs dispatched or running, so the scheduler only
releases what can start at once and the order of the queue, not the speed of workers, decides who goes first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from xrunner.contracts.messages import WorkerHeartbeat


@dataclass(frozen=True, slots=True)
class Candidate:
    tenant: str
    job_id: str
    pool: str
    priority: int
    queued_at: datetime
    attempt: int
    version: int


def free_slots(workers: Iterable[WorkerHeartbeat], active: Mapping[str, int]) -> dict[str, int]:
    """Slots of live, non-draining workers per pool, minus the pool's dispatched and running jobs."""
    slots: dict[str, int] = {}
    for w in workers:
        if not w.draining:
            slots[w.pool] = slots.get(w.pool, 0) + w.slots
    return {pool: max(0, n - active.get(pool, 0)) for pool, n in slots.items()}


def plan(queued: Sequence[Candidate], free: Mapping[str, int]) -> list[Candidate]:
    """Highest priority first, then first queued, as far as each pool has room."""
    room = dict(free)
    chosen: list[Candidate] = []
    for job in sorted(queued, key=lambda c: (-c.priority, c.queued_at, c.job_id)):
        if room.get(job.pool, 0) > 0:
            room[job.pool] -= 1
            chosen.append(job)
    return chosen
