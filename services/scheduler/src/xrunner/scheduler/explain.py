"""Says why each queued job waits, where it stands and when it should start, and summarises tenants and pools
for KV `xr_stats`. Pure: built from the state, the last plan, the pools, dispatch rates and `now`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from xrunner.contracts.api import JobView
from xrunner.contracts.policy import refill
from xrunner.contracts.stats import GlobalStats, PoolStats, QueuedJob, TenantLimits, TenantStats
from xrunner.scheduler.fairness import ACTIVE, Plan, capacity, dominant, queue_order
from xrunner.scheduler.placement import Pool
from xrunner.scheduler.state import SchedulerState

HEAD = 200
_DETAIL = {
    "tenant_at_max_inflight": "your tenant runs as many jobs as its max_inflight allows",
    "pool_full": "every slot of the pools that fit this job is taken",
    "no_worker_fits": "no live worker is large enough for this job's resource hints and runs its kind of workload",
    "backoff": "waiting out the retry backoff",
    "next_round": "will be considered in the next dispatch round",
}


def tenant_stats(
    state: SchedulerState,
    plan: Plan,
    pools: Mapping[str, Pool],
    rates: Mapping[str, float],
    latency: Mapping[str, tuple[float | None, float | None]],
    now: datetime,
) -> list[TenantStats]:
    by_tenant: dict[str, list[JobView]] = {}
    for view in state.jobs.values():
        by_tenant.setdefault(view.tenant, []).append(view)
    total = capacity(pools)
    out = []
    for name in sorted(set(by_tenant) | set(state.tenants)):
        views = by_tenant.get(name, [])
        queued = sorted((v for v in views if v.state == "queued"), key=queue_order)
        active = [v for v in views if v.state in ACTIVE]
        rec = state.tenant(name)
        use = [sum(getattr(v.spec.resources, f) for v in active) for f in ("cpu_millis", "memory_mib", "gpu")]
        head = [_queued(v, i + 1, plan, rates.get(name, 0.0), now) for i, v in enumerate(queued[:HEAD])]
        oldest = min((v.queued_at for v in queued if v.queued_at), default=None)
        p50, p99 = latency.get(name, (None, None))
        out.append(
            TenantStats(
                tenant=name,
                limits=rec.limits,
                queued=len(queued),
                dispatched=sum(1 for v in active if v.state == "dispatched"),
                running=sum(1 for v in active if v.state == "running"),
                oldest_wait_s=round((now - oldest).total_seconds(), 3) if oldest else 0.0,
                dominant_share=round(dominant(use[0], use[1], use[2], total), 4),
                recent_usage=round(rec.usage.decayed(now).cpu, 1),
                dispatch_p50_ms=p50,
                dispatch_p99_ms=p99,
                rate_tokens=round(refill(rec.bucket, rec.limits.submit_rate_per_s, now).tokens, 3),
                head=head,
            )
        )
    return out


def _queued(view: JobView, position: int, plan: Plan, rate: float, now: datetime) -> QueuedJob:
    reason, pool = plan.waiting.get((view.tenant, view.id), ("next_round", None))
    eta = round(position / rate, 3) if rate > 0 else None
    if reason == "backoff" and view.not_before is not None:
        eta = max(eta or 0.0, round((view.not_before - now).total_seconds(), 3))
    if reason == "no_worker_fits":
        eta = None
    return QueuedJob(
        job_id=view.id,
        position=position,
        reason=reason,
        pool=pool or view.spec.resources.pool,
        eta_s=eta,
        detail=_DETAIL.get(reason, ""),
    )


def global_stats(
    state: SchedulerState,
    pools: Mapping[str, Pool],
    scheduler_id: str,
    max_queued_total: int,
    latency: tuple[float | None, float | None],
    defaults: TenantLimits,
    now: datetime,
) -> GlobalStats:
    per_pool: dict[str, list[JobView]] = {}
    queued = running = dispatched = 0
    for view in state.jobs.values():
        queued += view.state == "queued"
        running += view.state == "running"
        dispatched += view.state == "dispatched"
        per_pool.setdefault(view.pool or view.spec.resources.pool or "", []).append(view)
    return GlobalStats(
        at=now,
        scheduler_id=scheduler_id,
        queued=queued,
        running=running,
        dispatched=dispatched,
        max_queued_total=max_queued_total,
        dispatch_p50_ms=latency[0],
        dispatch_p99_ms=latency[1],
        pools=[_pool(p, per_pool.get(p.name, []), now) for p in sorted(pools.values(), key=lambda p: p.name)],
        tenants=sorted(state.tenants),
        default_limits=defaults,
    )


def _pool(pool: Pool, views: list[JobView], now: datetime) -> PoolStats:
    dispatched = sum(1 for v in views if v.state == "dispatched")
    running = sum(1 for v in views if v.state == "running")
    waiting = [v.queued_at for v in views if v.state == "queued" and v.queued_at]
    return PoolStats(
        pool=pool.name,
        workers=pool.workers,
        slots=pool.slots,
        free_slots=max(0, pool.slots - dispatched - running),
        dispatched=dispatched,
        running=running,
        queued=sum(1 for v in views if v.state == "queued"),
        oldest_wait_s=round((now - min(waiting)).total_seconds(), 3) if waiting else 0.0,
        cpu_millis=pool.cpu_millis,
        memory_mib=pool.memory_mib,
        gpu=pool.gpu,
    )
