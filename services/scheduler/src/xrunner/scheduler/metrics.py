"""The scheduler's Prometheus metrics and the rolling numbers its decisions and snapshot use
(dispatch rates for ETAs and Retry-After, queued→started latency percentiles)."""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from xrunner.contracts import events as ev
from xrunner.contracts.api import JobView
from xrunner.contracts.stats import GlobalStats, TenantStats

DISPATCHED = Counter("xrunner_jobs_dispatched_total", "Attempts released to a pool", ["pool"])
REJECTED = Counter("xrunner_jobs_rejected_total", "Submissions refused by admission", ["cause"])
LOST = Counter("xrunner_jobs_lost_total", "Attempts lost with their worker")
LATENCY = Histogram(
    "xrunner_dispatch_latency_seconds",
    "Queued to process started",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RUNNING = Gauge("xrunner_jobs_running", "Jobs running", ["pool"])
QUEUE_DEPTH = Gauge("xrunner_worker_queue_depth", "Dispatched, not yet started", ["pool"])
INFLIGHT = Gauge("xrunner_tenant_inflight", "A tenant's dispatched and running jobs", ["tenant"])
BACKLOG = Gauge("xrunner_backlog_jobs", "Queued jobs", ["tenant"])
OLDEST = Gauge("xrunner_oldest_waiting_seconds", "Age of the oldest queued job", ["tenant"])
POOL_BACKLOG = Gauge("xrunner_pool_backlog_jobs", "Queued jobs that can only run in this pool", ["pool"])
POOL_OLDEST = Gauge("xrunner_pool_oldest_waiting_seconds", "Age of the pool's oldest queued job", ["pool"])
POOL_WORKERS = Gauge("xrunner_pool_workers", "Live, non-draining workers in the pool", ["pool"])
POOL_SLOTS = Gauge("xrunner_pool_slots", "The pool's slots (its live workers' together)", ["pool"])
POOL_FREE = Gauge("xrunner_pool_free_slots", "The pool's slots not taken by a dispatched or running job", ["pool"])

WINDOW_S = 10.0


class Metrics:
    def __init__(self) -> None:
        self.rejected, self.lost = REJECTED, LOST
        self._dispatches: deque[tuple[float, str]] = deque()
        self._latency: deque[tuple[str, float]] = deque(maxlen=5000)

    def dispatched(self, view: JobView, pool: str, now: datetime) -> None:
        DISPATCHED.labels(pool).inc()
        self._dispatches.append((time.monotonic(), view.tenant))

    def started(self, event: ev.JobStarted, view: JobView) -> None:
        if view.queued_at is None:
            return
        seconds = max(0.0, (event.occurred_at - view.queued_at).total_seconds())
        LATENCY.observe(seconds)
        self._latency.append((view.tenant, seconds * 1000))

    def _trim(self) -> None:
        horizon = time.monotonic() - WINDOW_S
        while self._dispatches and self._dispatches[0][0] < horizon:
            self._dispatches.popleft()

    def dispatch_rate(self) -> float:
        self._trim()
        return len(self._dispatches) / WINDOW_S

    def tenant_rates(self) -> dict[str, float]:
        self._trim()
        rates: dict[str, float] = {}
        for _, tenant in self._dispatches:
            rates[tenant] = rates.get(tenant, 0.0) + 1 / WINDOW_S
        return rates

    def latency(self, tenant: str | None = None) -> tuple[float | None, float | None]:
        values = sorted(ms for t, ms in self._latency if tenant is None or t == tenant)
        if not values:
            return None, None
        return round(values[len(values) // 2], 3), round(values[min(len(values) - 1, int(len(values) * 0.99))], 3)

    def tenant_latency(self) -> dict[str, tuple[float | None, float | None]]:
        return {t: self.latency(t) for t in {t for t, _ in self._latency}}

    def observe_snapshot(self, tenants: list[TenantStats], summary: GlobalStats) -> None:
        for t in tenants:
            INFLIGHT.labels(t.tenant).set(t.dispatched + t.running)
            BACKLOG.labels(t.tenant).set(t.queued)
            OLDEST.labels(t.tenant).set(t.oldest_wait_s)
        for p in summary.pools:
            RUNNING.labels(p.pool).set(p.running)
            QUEUE_DEPTH.labels(p.pool).set(p.dispatched)
            POOL_BACKLOG.labels(p.pool).set(p.queued)
            POOL_OLDEST.labels(p.pool).set(p.oldest_wait_s)
            POOL_WORKERS.labels(p.pool).set(p.workers)
            POOL_SLOTS.labels(p.pool).set(p.slots)
            POOL_FREE.labels(p.pool).set(p.free_slots)
