"""The scheduler's settings, and the relation its worker lease numbers must keep."""

from __future__ import annotations

from xrunner.servicekit.settings import CommonSettings


class SchedulerSettings(CommonSettings, kw_only=True, frozen=True):
    http_port: int = 8703
    schema: str = "scheduler"
    scheduler_id: str = ""
    tick_s: float = 0.25
    stats_every_s: float = 1.0
    # A running attempt is lost once its worker has not been heard from for `lost_after_s` = lease + margin; the
    # worker's reaper kills its jobs at lease - margin (docs/worker.md). XR_WORKER_LEASE_S and
    # XR_WORKER_FENCE_MARGIN_S set both services' numbers at once.
    worker_lease_s: float = 5.0
    worker_fence_margin_s: float = 1.5
    timeout_grace_s: float = 30.0
    redispatch_after_s: float = 10.0
    decide_after_s: float = 2.0  # a job awaiting admission, a cancel or a backoff this long: the sweep decides it
    max_queued_total: int = 1_000_000
    default_weight: float = 1.0
    default_max_inflight: int = 1000
    default_max_queued: int = 100_000
    default_submit_rate_per_s: float = 1000.0

    @property
    def lost_after_s(self) -> float:
        """How long a worker may go unheard before its running attempts are declared lost and run again."""
        return self.worker_lease_s + self.worker_fence_margin_s

    def check_lease(self) -> None:
        """Refuse to start with numbers that give no fencing window: 0 < lease - margin < lease + margin."""
        if self.worker_fence_margin_s <= 0 or self.worker_lease_s <= self.worker_fence_margin_s:
            raise ValueError(f"need 0 < worker_fence_margin_s ({self.worker_fence_margin_s:g}) < worker_lease_s "
                             f"({self.worker_lease_s:g})")
