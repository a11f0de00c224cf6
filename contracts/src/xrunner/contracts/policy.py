"""Pure policies shared by services: the token bucket, admission against quotas and rates, and the retry policy.

No clock and no randomness inside: callers pass `now` and a jitter fraction, so replaying the same events gives the
same decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from xrunner.contracts.events import RejectCause, RejectScope
from xrunner.contracts.spec import RetryPolicy
from xrunner.contracts.stats import TenantLimits

RATE_BURST_S = 2.0  # a tenant may submit this many seconds' worth of its rate at once


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket (a tenant's submit rate, or its request rate at the edge); `tokens` as of `at`, and full when
    `at` is None."""

    tokens: float
    at: datetime | None


@dataclass(frozen=True, slots=True)
class Admitted:
    bucket: Bucket


@dataclass(frozen=True, slots=True)
class Rejected:
    cause: RejectCause
    scope: RejectScope
    retry_after_s: float
    detail: str


def refill(bucket: Bucket, rate: float, now: datetime, capacity: float | None = None) -> Bucket:
    """`bucket` topped up at `rate` tokens/s until `now`, up to `capacity` (by default RATE_BURST_S seconds' worth)."""
    capacity = max(1.0, rate * RATE_BURST_S) if capacity is None else capacity
    if bucket.at is None:
        return Bucket(capacity, now)
    elapsed = max(0.0, (now - bucket.at).total_seconds())
    return Bucket(min(capacity, bucket.tokens + elapsed * rate), now)


def take(bucket: Bucket, rate: float, now: datetime, capacity: float | None = None) -> tuple[Bucket, float]:
    """Refill `bucket` until `now` and take one token: the bucket after and 0.0, or the refilled bucket (nothing
    taken) and the seconds until a token is there."""
    full = refill(bucket, rate, now, capacity)
    if full.tokens >= 1.0:
        return Bucket(full.tokens - 1.0, now), 0.0
    return full, (1.0 - full.tokens) / rate


def admit(
    limits: TenantLimits,
    tenant_queued: int,
    queued_total: int,
    max_queued_total: int,
    bucket: Bucket,
    now: datetime,
    drain_rate_per_s: float = 1.0,
) -> Admitted | Rejected:
    """Admit a submission unless the global queue, the tenant's queue or its submit rate is over its limit.
    `retry_after_s` estimates when a retry would pass (`drain_rate_per_s`: how fast queues drain now)."""
    drain = max(drain_rate_per_s, 0.1)
    if queued_total >= max_queued_total:
        over = queued_total - max_queued_total + 1
        return Rejected("global_queue_full", "global", _clamp(over / drain),
                        f"{queued_total} jobs are queued in all; the limit is {max_queued_total}")
    if tenant_queued >= limits.max_queued:
        over = tenant_queued - limits.max_queued + 1
        return Rejected("tenant_queue_full", "tenant", _clamp(over / drain),
                        f"{tenant_queued} of your jobs are queued; your limit is {limits.max_queued}")
    bucket, wait = take(bucket, limits.submit_rate_per_s, now)
    if wait > 0:
        return Rejected("rate_limited", "tenant", _clamp(wait),
                        f"your submit rate limit is {limits.submit_rate_per_s:g}/s")
    return Admitted(bucket)


def _clamp(seconds: float) -> float:
    """Bounded, and rounded up to the millisecond so that a retry exactly at it passes."""
    return min(3600.0, max(0.05, math.ceil(seconds * 1000) / 1000))


def should_retry(policy: RetryPolicy, exit_code: int | None, retries_used: int) -> bool:
    """Whether a failed attempt goes back to the queue: its exit code is retryable and the budget is not spent.
    `retries_used` counts earlier attempts that failed (worker loss never counts)."""
    return exit_code is not None and exit_code in policy.retry_on_exit_codes and retries_used + 1 < policy.max_attempts


def backoff_s(policy: RetryPolicy, retries_used: int, jitter: float) -> float:
    """Exponential backoff with full jitter in [50%, 100%] of the step; `jitter` in [0, 1)."""
    step = min(policy.backoff_max_s, policy.backoff_s * 2.0 ** max(0, retries_used))
    return round(step * (0.5 + 0.5 * jitter), 3)
