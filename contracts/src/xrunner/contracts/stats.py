"""What the scheduler publishes about its queues (KV `xr_stats`), and the answers built from it:
`GET /v1/stats`, `GET /v1/jobs/{id}/explain`, `POST /v1/jobs/dry-run`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from xrunner.contracts.events import TenantConfigured

WaitReason = Literal[
    "tenant_at_max_inflight", "pool_full", "no_worker_fits", "backoff", "rate_limited", "next_round", "not_queued"
]
STATS_GLOBAL_KEY = "global"


def tenant_stats_key(tenant: str) -> str:
    return f"tenant.{tenant}"


class TenantLimits(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's effective share and limits (configured, or the scheduler's defaults)."""

    weight: float = 1.0
    max_inflight: int = 100
    max_queued: int = 10_000
    submit_rate_per_s: float = 100.0
    configured: bool = False
    artifact_ttl_s: float = 7 * 86_400.0

    @classmethod
    def from_event(cls, event: TenantConfigured) -> TenantLimits:
        """The limits a `tenant.configured` event sets."""
        return cls(
            weight=event.weight,
            max_inflight=event.max_inflight,
            max_queued=event.max_queued,
            submit_rate_per_s=event.submit_rate_per_s,
            configured=True,
            artifact_ttl_s=event.artifact_ttl_s,
        )


class QueuedJob(msgspec.Struct, frozen=True, kw_only=True):
    """One waiting job as the scheduler sees it: why it waits, where it stands, and when it should start."""

    job_id: str
    position: int
    reason: WaitReason
    pool: str | None
    eta_s: float | None
    detail: str = ""


class TenantStats(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    limits: TenantLimits
    queued: int
    dispatched: int
    running: int
    oldest_wait_s: float
    dominant_share: float
    recent_usage: float
    dispatch_p50_ms: float | None
    dispatch_p99_ms: float | None
    rate_tokens: float
    head: list[QueuedJob] = msgspec.field(default_factory=list)


class PoolStats(msgspec.Struct, frozen=True, kw_only=True):
    pool: str
    workers: int
    slots: int
    free_slots: int
    dispatched: int
    running: int
    queued: int
    oldest_wait_s: float
    cpu_millis: int
    memory_mib: int
    gpu: int


class GlobalStats(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    scheduler_id: str
    queued: int
    running: int
    dispatched: int
    max_queued_total: int
    dispatch_p50_ms: float | None
    dispatch_p99_ms: float | None
    pools: list[PoolStats] = msgspec.field(default_factory=list)
    tenants: list[str] = msgspec.field(default_factory=list)
    default_limits: TenantLimits = msgspec.field(default_factory=TenantLimits)


class StatsView(msgspec.Struct, kw_only=True):
    """`GET /v1/stats`: the pools and the caller's tenant (every tenant for an admin)."""

    at: datetime | None
    pools: list[PoolStats]
    tenants: list[TenantStats]
    queued_total: int
    running_total: int
    dispatched_total: int = 0
    dispatch_p50_ms: float | None = None  # dispatch latency over every tenant, as the scheduler last published
    dispatch_p99_ms: float | None = None


class Explain(msgspec.Struct, kw_only=True):
    """`GET /v1/jobs/{id}/explain`: why a job is where it is."""

    job_id: str
    state: str
    reason: WaitReason
    detail: str
    position: int | None = None
    eta_s: float | None = None
    pool: str | None = None
    snapshot_at: datetime | None = None


class DryRun(msgspec.Struct, kw_only=True):
    """`POST /v1/jobs/dry-run`: what admission would decide for this spec now."""

    decision: Literal["admitted", "rejected"]
    pool: str | None = None
    cause: str | None = None
    retry_after_s: float | None = None
    detail: str = ""
    position: int | None = None
