"""The scheduler's settings."""

from __future__ import annotations

from xrunner.servicekit.settings import CommonSettings


class SchedulerSettings(CommonSettings, kw_only=True, frozen=True):
    http_port: int = 8703
    schema: str = "scheduler"
    default_pool: str = "default"
    dispatch_batch: int = 256
    redispatch_after_s: float = 30.0
