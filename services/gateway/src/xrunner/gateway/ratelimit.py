"""Checks at the edge that run after authentication and before a body is read: per-tenant request rate, media type."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from litestar import Request

from xrunner.contracts.policy import Bucket, refill, take
from xrunner.servicekit.auth import Principal
from xrunner.servicekit.problems import ProblemError

MAX_TRACKED = 10_000  # tenants kept before buckets that have refilled completely are forgotten

FULL = Bucket(0.0, None)


def _now() -> datetime:
    return datetime.now(UTC)


class RateLimiter:
    """A token bucket per tenant, in this process's memory; a rate of 0 or less turns the limit off."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], datetime] = _now) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self.clock = clock
        self.buckets: dict[str, Bucket] = {}

    def wait_s(self, tenant: str) -> float:
        """Take a token for `tenant`; 0.0 when it got one, else the seconds until it can."""
        if self.rate_per_s <= 0:
            return 0.0
        now = self.clock()
        if len(self.buckets) >= MAX_TRACKED:
            self._forget_full(now)
        self.buckets[tenant], wait = take(self.buckets.get(tenant, FULL), self.rate_per_s, now, self.burst)
        return wait

    def _forget_full(self, now: datetime) -> None:
        """A bucket that has refilled completely is the same as no bucket."""
        full = [t for t, b in self.buckets.items() if refill(b, self.rate_per_s, now, self.burst).tokens >= self.burst]
        for tenant in full:
            del self.buckets[tenant]

    def check(self, who: Principal) -> None:
        """Raise 429 `rate_limited` when `who`'s tenant is over its request rate."""
        wait = self.wait_s(who.tenant)
        if wait > 0:
            raise ProblemError(
                429,
                "rate_limited",
                "Too many requests for this tenant",
                detail=f"at most {self.rate_per_s:g} requests/s, bursts of {self.burst}",
                retry_after_s=round(wait, 3),
                cause="request_rate",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


def is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def require_json_body(request: Request[Any, Any, Any]) -> None:
    """Raise 415 when a handler that takes a JSON body is sent a body declared as something else."""
    content_type = request.headers.get("content-type")
    takes_body = "data" in request.route_handler.parsed_fn_signature.parameters
    if takes_body and content_type and not is_json(content_type):
        raise ProblemError(415, "unsupported_media_type", "The body must be application/json", detail=content_type)


def edge_checks(limiter: RateLimiter | None) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """A litestar `before_request` hook: it runs after the route's guards (so the principal is known) and before the
    body is read, on the event loop (async: never in a thread). Routes without a principal (/healthz, /readyz,
    /metrics) are never limited."""

    async def before_request(request: Request[Any, Any, Any]) -> None:
        who: Principal | None = request.state.get("principal")
        if who is not None and limiter is not None:
            limiter.check(who)
        require_json_body(request)

    return before_request
