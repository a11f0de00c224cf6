"""Decides where a job can run: which pools fit its resource hints and which have a free slot now. Pure.

A pool's shape is the smallest of its live workers (a job must fit whichever worker pulls it); its free slots are
its workers' slots minus its dispatched and running jobs. A job goes to the smallest pool that fits; GPU pools are
kept for jobs that need a GPU while another pool fits. A pool runs a workload kind (`process`, `docker`) only if
every one of its workers does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from xrunner.contracts.decisions import PoolFit
from xrunner.contracts.messages import WorkerHeartbeat
from xrunner.contracts.stats import WaitReason


@dataclass(frozen=True, slots=True)
class Need:
    cpu_millis: int
    memory_mib: int
    gpu: int
    pool: str | None = None
    workload: str = "process"


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    workers: int
    slots: int
    cpu_millis: int
    memory_mib: int
    gpu: int
    workloads: frozenset[str] = frozenset({"process"})
    # The live, non-draining workers; empty when unknown. Not part of a pool's identity.
    worker_ids: frozenset[str] = field(default=frozenset(), compare=False)

    def counts(self, worker_id: str | None) -> bool:
        """Whether a job running on `worker_id` takes one of this pool's slots (not so on a draining or dead
        worker: its slots are not in the pool any more either)."""
        return not self.worker_ids or worker_id in self.worker_ids

    def fits(self, need: Need) -> bool:
        return (
            need.cpu_millis <= self.cpu_millis
            and need.memory_mib <= self.memory_mib
            and need.gpu <= self.gpu
            and need.workload in self.workloads
        )

    @property
    def size(self) -> tuple[int, int, int, str]:
        return (self.gpu, self.memory_mib, self.cpu_millis, self.name)


def pools_from(workers: Iterable[WorkerHeartbeat]) -> dict[str, Pool]:
    """Live, non-draining workers grouped into pools."""
    grouped: dict[str, list[WorkerHeartbeat]] = {}
    for w in workers:
        if not w.draining:
            grouped.setdefault(w.pool, []).append(w)
    return {
        name: Pool(
            name,
            len(ws),
            sum(w.slots for w in ws),
            min(w.cpu_millis for w in ws),
            min(w.memory_mib for w in ws),
            min(w.gpu for w in ws),
            frozenset.intersection(*(frozenset(w.workloads) for w in ws)),
            frozenset(w.worker_id for w in ws),
        )
        for name, ws in grouped.items()
    }


def candidates(need: Need, pools: Mapping[str, Pool]) -> list[Pool]:
    """The pools that can ever run `need`, preferred first (smallest; no GPU pool for a CPU job if avoidable)."""
    if need.pool is not None:
        pool = pools.get(need.pool)
        return [pool] if pool is not None and pool.fits(need) else []
    fitting = sorted((p for p in pools.values() if p.fits(need)), key=lambda p: p.size)
    if need.gpu == 0 and any(p.gpu == 0 for p in fitting):
        fitting = [p for p in fitting if p.gpu == 0]
    return fitting


def choose(
    need: Need, pools: Mapping[str, Pool], free: Mapping[str, int]
) -> tuple[str, Literal[""]] | tuple[None, WaitReason]:
    """(pool, "") when the job can start now; (None, reason) when not: `no_worker_fits` or `pool_full`."""
    fitting = candidates(need, pools)
    if not fitting:
        return None, "no_worker_fits"
    for pool in fitting:
        if free.get(pool.name, 0) > 0:
            return pool.name, ""
    return None, "pool_full"


def free_slots(pools: Mapping[str, Pool], active: Mapping[str, int]) -> dict[str, int]:
    return {name: max(0, p.slots - active.get(name, 0)) for name, p in pools.items()}


def _unfit(need: Need, pool: Pool) -> tuple[Literal["filtered", "exhausted"], str, str] | None:
    """Why `pool` can never run `need` (its kind, the constraint or dimension, a sentence), or None when it can."""
    if need.pool is not None and pool.name != need.pool:
        return "filtered", "pool", f"the job asks for pool {need.pool}"
    if need.workload not in pool.workloads:
        return "filtered", "workload", f"its workers do not all run {need.workload} workloads"
    for dimension, needed, has in (("cpu", need.cpu_millis, pool.cpu_millis), ("memory", need.memory_mib,
                                   pool.memory_mib), ("gpu", need.gpu, pool.gpu)):
        if needed > has:
            return "exhausted", dimension, f"needs {needed} {dimension}, its smallest worker has {has}"
    return None


def assess(need: Need, pools: Mapping[str, Pool], free: Mapping[str, int], round_free: Mapping[str, int],
           chosen: str) -> list[PoolFit]:
    """Every pool as placement saw it when `chosen` was picked for `need`: chosen, passed (fits and has room, but a
    preferred pool came first), exhausted (in a dimension of its shape, or in slots) or filtered (by a
    constraint). `free` is the pools' free slots at the pick, `round_free` when the round began."""
    preferred = {p.name for p in candidates(need, pools)}
    out = []
    for pool in sorted(pools.values(), key=lambda p: p.size):
        unfit = _unfit(need, pool)
        if unfit is None and pool.name not in preferred:
            unfit = "filtered", "gpu_reserved", "a GPU pool is kept for GPU jobs while another pool fits"
        if unfit is None and pool.name != chosen:
            room = free.get(pool.name, 0)
            unfit = ("exhausted", "slots", "no free slot") if room <= 0 else ("passed", "", "a smaller pool fits")
        outcome, dimension, reason = unfit or ("chosen", "", f"free slots: {free.get(pool.name, 0)}")
        out.append(PoolFit(pool=pool.name, workers=pool.workers, slots=pool.slots, free=round_free.get(pool.name, 0),
                           cpu_millis=pool.cpu_millis, memory_mib=pool.memory_mib, gpu=pool.gpu,
                           workloads=sorted(pool.workloads), outcome=outcome, dimension=dimension, reason=reason))
    return out
