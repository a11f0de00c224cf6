"""Decides, from a scheduler snapshot, why a job waits and what admission would do with a spec; pure, no I/O."""

from __future__ import annotations

import sys
from datetime import datetime

from xrunner.contracts import policy
from xrunner.contracts.api import JobView
from xrunner.contracts.spec import JobSpec
from xrunner.contracts.stats import DryRun, Explain, GlobalStats, TenantLimits, TenantStats, WaitReason

DEFAULT_POOL = "default"


def explain(
    view: JobView, stats: TenantStats | None, limits: TenantLimits, snapshot_at: datetime | None, now: datetime
) -> Explain:
    """The scheduler's own word when the job is in its tenant's head; otherwise a reason derived from the stats."""
    answer = Explain(job_id=view.id, state=view.state, reason="not_queued", detail="", snapshot_at=snapshot_at)
    if view.state != "queued":
        answer.detail = "waiting for admission" if view.state == "submitted" else view.state
        answer.pool = view.pool
        return answer
    head = stats.head if stats else []
    for waiting in head:
        if waiting.job_id == view.id:
            answer.reason, answer.detail, answer.pool = waiting.reason, waiting.detail, waiting.pool
            answer.position, answer.eta_s = waiting.position, waiting.eta_s
            return answer
    answer.reason, why = _beyond_head(view, stats, limits, now)
    where = f"beyond the first {len(head)} waiting jobs the scheduler details" if snapshot_at else "no snapshot yet"
    answer.detail, answer.pool = f"{where}; {why}", view.pool
    return answer


def _beyond_head(
    view: JobView, stats: TenantStats | None, limits: TenantLimits, now: datetime
) -> tuple[WaitReason, str]:
    if view.not_before is not None and view.not_before > now:
        return "backoff", f"retrying after {view.not_before.isoformat()}"
    inflight = stats.dispatched + stats.running if stats else 0
    if inflight >= limits.max_inflight:
        return "tenant_at_max_inflight", f"{inflight} of your jobs are in flight; your limit is {limits.max_inflight}"
    return "pool_full", f"waiting for a free slot in pool {view.pool or DEFAULT_POOL}"


def dry_run(
    spec: JobSpec, stats: TenantStats | None, global_stats: GlobalStats | None, limits: TenantLimits, now: datetime
) -> DryRun:
    """What admission would decide for `spec` now, given the queues and rate bucket the snapshot shows."""
    tenant_queued = stats.queued if stats else 0
    bucket = policy.Bucket(
        tokens=stats.rate_tokens if stats else 0.0,
        at=global_stats.at if stats and global_stats else None,  # unknown: a full bucket
    )
    decision = policy.admit(
        limits,
        tenant_queued,
        global_stats.queued if global_stats else 0,
        global_stats.max_queued_total if global_stats else sys.maxsize,
        bucket,
        now,
    )
    if isinstance(decision, policy.Rejected):
        return DryRun(
            decision="rejected", cause=decision.cause, retry_after_s=decision.retry_after_s, detail=decision.detail
        )
    return DryRun(
        decision="admitted",
        pool=spec.resources.pool or DEFAULT_POOL,
        position=tenant_queued + 1,
        detail=f"{tenant_queued} of your jobs are queued; your limit is {limits.max_queued}",
    )
