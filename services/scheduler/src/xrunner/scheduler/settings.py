"""The scheduler's settings."""

from __future__ import annotations

from xrunner.servicekit.settings import CommonSettings


class SchedulerSettings(CommonSettings, kw_only=True, frozen=True):
    http_port: int = 8703
    schema: str = "scheduler"
    scheduler_id: str = ""
    tick_s: float = 0.25
    stats_every_s: float = 1.0
    worker_lease_s: float = 5.0
    timeout_grace_s: float = 30.0
    redispatch_after_s: float = 10.0
    decide_after_s: float = 2.0  # a job awaiting admission, a cancel or a backoff this long: the sweep decides it
    max_queued_total: int = 1_000_000
    default_weight: float = 1.0
    default_max_inflight: int = 1000
    default_max_queued: int = 100_000
    default_submit_rate_per_s: float = 1000.0
