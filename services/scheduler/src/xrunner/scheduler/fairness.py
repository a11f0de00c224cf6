"""Decides the order in which queued jobs start: weighted fair share across tenants, priority then FIFO inside a
tenant. Pure: the caller passes the state, the pools and `now`.

Each pick goes to a tenant with nothing in flight first, then to the tenant with the smallest weighted dominant
share (the largest of its cpu, memory and gpu shares of the live capacity, running plus half its decayed recent
usage), among tenants with an eligible job and room under `max_inflight`. So a tenant with nothing running is served
in the very next round, however large another tenant's backlog and however much it ran lately. Inside a tenant the
first job that can start now goes (a job that fits no pool, or whose pool is full, does not block smaller jobs
behind it: bounded backfill).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from xrunner.contracts.api import JobView
from xrunner.contracts.decisions import COMPETING_KEPT, DispatchWhy, PoolFit, Standing
from xrunner.contracts.spec import workload_kind
from xrunner.contracts.stats import WaitReason
from xrunner.scheduler import placement
from xrunner.scheduler.placement import Need, Pool
from xrunner.scheduler.state import USAGE_HALF_LIFE_S, Key, SchedulerState

LOOKAHEAD = 64
ACTIVE = ("dispatched", "running")


@dataclass(frozen=True, slots=True)
class Pick:
    key: Key
    pool: str
    why: DispatchWhy | None = None  # the plan's and placement's inputs (rank, picks and basis come from reconcile)


@dataclass
class Plan:
    picks: list[Pick] = field(default_factory=list)
    waiting: dict[Key, tuple[WaitReason, str | None]] = field(default_factory=dict)
    round_free: dict[str, int] = field(default_factory=dict)  # the pools' free slots when the round began


@dataclass
class _Tenant:
    name: str
    weight: float
    room: int
    share: float
    queue: list[JobView]
    busy: bool = False
    usage: float = 0.0  # the part of `share` that is recent usage
    max_inflight: int = 0
    queued: int = 0  # the tenant's queued jobs not yet picked (`queue` may hold only the first of them)

    def standing(self) -> Standing:
        return Standing(tenant=self.name, idle=not self.busy, rank_share=round(self.share / self.weight, 6),
                        running_share=round(self.share - self.usage, 6), usage_share=round(self.usage, 6),
                        weight=self.weight, inflight=self.max_inflight - self.room, max_inflight=self.max_inflight,
                        queued=self.queued)


def need_of(view: JobView) -> Need:
    r = view.spec.resources
    return Need(r.cpu_millis, r.memory_mib, r.gpu, r.pool, workload_kind(view.spec.workload))


def queue_order(view: JobView) -> tuple[int, datetime, str]:
    return (-view.spec.priority, view.queued_at or view.created_at, view.id)


def capacity(pools: Mapping[str, Pool]) -> tuple[float, float, float]:
    """Total cpu, memory and gpu of the live workers (each worker counted with its pool's shape)."""
    cpu = sum(p.cpu_millis * p.workers for p in pools.values())
    mem = sum(p.memory_mib * p.workers for p in pools.values())
    gpu = sum(p.gpu * p.workers for p in pools.values())
    return float(cpu or 1), float(mem or 1), float(gpu or 1)


def dominant(cpu: float, mem: float, gpu: float, total: tuple[float, float, float]) -> float:
    return max(cpu / total[0], mem / total[1], gpu / total[2])


def plan(state: SchedulerState, pools: Mapping[str, Pool], now: datetime,
         round_free: Mapping[str, int] | None = None, explain: bool = True, waiting: bool = True) -> Plan:
    """Which queued jobs start now and where (and, with `explain`, why for each pick); with `waiting`, why each of
    the others waits. `round_free`: the pools' free slots when they are known already (a replay takes the recorded
    ones). Without `waiting` (a round that only dispatches), each tenant's queue is ordered only as deep as a round
    can look: the picks and their records are the same, and a backlog of 10,000 costs a fraction of sorting it."""
    total = capacity(pools)
    active: dict[str, int] = {}
    tenants = _tenants(state, pools, total, now, active)
    free = placement.free_slots(pools, active) if round_free is None else dict(round_free)
    _order(tenants.values(), None if waiting else sum(free.values()) + LOOKAHEAD)
    result = Plan(round_free=dict(free))
    heap = [(t.busy, t.share / t.weight, t.name) for t in tenants.values() if t.queue]
    heapq.heapify(heap)
    while heap:
        *_, name = heapq.heappop(heap)
        tenant = tenants[name]
        if tenant.room <= 0:
            if waiting:
                _wait_all(result, tenant.queue, "tenant_at_max_inflight", None)
            continue
        standing = tenant.standing() if explain else None
        found = _pick(tenant, pools, free, now, result, explain, waiting)
        if found is None:
            continue
        picked, position, fits = found
        if standing is not None:
            last = result.picks[-1]
            result.picks[-1] = Pick(last.key, last.pool, _why(standing, position, fits, heap, tenants))
        tenant.room -= 1
        tenant.busy = True
        r = picked.spec.resources
        tenant.share += dominant(r.cpu_millis, r.memory_mib, r.gpu, total)
        if tenant.queue:
            heapq.heappush(heap, (tenant.busy, tenant.share / tenant.weight, name))
    return result


def _tenants(
    state: SchedulerState,
    pools: Mapping[str, Pool],
    total: tuple[float, float, float],
    now: datetime,
    active: dict[str, int],
) -> dict[str, _Tenant]:
    running: dict[str, list[float]] = {}
    inflight: dict[str, int] = {}
    queues: dict[str, list[JobView]] = {}
    for view in state.jobs.values():
        r = view.spec.resources
        if view.state in ACTIVE:
            use = running.setdefault(view.tenant, [0.0, 0.0, 0.0])
            use[0] += r.cpu_millis
            use[1] += r.memory_mib
            use[2] += r.gpu
            inflight[view.tenant] = inflight.get(view.tenant, 0) + 1
            pool = pools.get(view.pool or "")
            if pool is not None and (view.state == "dispatched" or pool.counts(view.worker_id)):
                active[pool.name] = active.get(pool.name, 0) + 1
        elif view.state == "queued":
            queues.setdefault(view.tenant, []).append(view)
    out = {}
    for name, queue in queues.items():
        rec = state.tenant(name)
        use = running.get(name, [0.0, 0.0, 0.0])
        recent = rec.usage.decayed(now)
        horizon = USAGE_HALF_LIFE_S
        share = dominant(use[0], use[1], use[2], total) + 0.5 * dominant(
            recent.cpu / horizon, recent.memory / horizon, recent.gpu / horizon, total
        )
        room = rec.limits.max_inflight - inflight.get(name, 0)
        usage = share - dominant(use[0], use[1], use[2], total)
        out[name] = _Tenant(name, max(rec.limits.weight, 1e-9), room, share, queue, busy=inflight.get(name, 0) > 0,
                            usage=usage, max_inflight=rec.limits.max_inflight, queued=len(queue))
    return out


def _order(tenants: Iterable[_Tenant], deepest: int | None) -> None:
    """Order each tenant's queue (priority, then FIFO) whole, or keep only its first `deepest` jobs when it is
    longer: a round picks at most one job per free slot, each from the first LOOKAHEAD jobs left in its tenant's
    queue, so it never looks past `free slots + LOOKAHEAD` (`_pick`)."""
    for tenant in tenants:
        if deepest is not None and len(tenant.queue) > 4 * deepest:  # a partial sort pays only well past the depth
            tenant.queue = heapq.nsmallest(deepest, tenant.queue, key=queue_order)
        else:
            tenant.queue.sort(key=queue_order)


def _why(standing: Standing, position: int, fits: list[PoolFit], heap: list[tuple[bool, float, str]],
         tenants: Mapping[str, _Tenant]) -> DispatchWhy:
    """The pick's record: its tenant's standing, the tenants the plan would serve next, and placement's metrics."""
    nearest = heapq.nsmallest(COMPETING_KEPT, heap)
    filtered: dict[str, int] = {}
    exhausted: dict[str, int] = {}
    for fit in fits:
        if fit.outcome in ("filtered", "exhausted"):
            counts = filtered if fit.outcome == "filtered" else exhausted
            counts[fit.dimension] = counts.get(fit.dimension, 0) + 1
    return DispatchWhy(
        tenant=standing, competing=[tenants[name].standing() for *_, name in nearest],
        competing_more=len(heap) - len(nearest), queue_position=position, pools_evaluated=len(fits),
        workers_evaluated=sum(f.workers for f in fits), filtered=filtered, exhausted=exhausted, pools=fits)


def _pick(
    tenant: _Tenant, pools: Mapping[str, Pool], free: dict[str, int], now: datetime, result: Plan, explain: bool,
    waiting: bool = True,
) -> tuple[JobView, int, list[PoolFit]] | None:
    """Take the tenant's first job that can start now (looking at most LOOKAHEAD jobs deep); with its position in
    the queue and how placement saw every pool."""
    for index, view in enumerate(tenant.queue[:LOOKAHEAD]):
        key = (view.tenant, view.id)
        if view.reason == "backoff" and (view.not_before is None or view.not_before > now):
            result.waiting[key] = ("backoff", None)
            continue
        chosen = placement.choose(need_of(view), pools, free)
        if chosen[0] is None:
            result.waiting[key] = (chosen[1], None)
            continue
        pool = chosen[0]
        fits = placement.assess(need_of(view), pools, free, result.round_free, pool) if explain else []
        free[pool] -= 1
        del tenant.queue[index]
        tenant.queued -= 1
        result.waiting.pop(key, None)
        result.picks.append(Pick(key, pool))
        return view, index + 1, fits
    if waiting:
        _wait_all(result, tenant.queue, "next_round", None, only_missing=True)  # beyond the lookahead
    tenant.queue = []
    return None


def _wait_all(
    result: Plan, queue: list[JobView], reason: WaitReason, pool: str | None, only_missing: bool = False
) -> None:
    for view in queue:
        key = (view.tenant, view.id)
        if not only_missing or key not in result.waiting:
            result.waiting[key] = (reason, pool)
