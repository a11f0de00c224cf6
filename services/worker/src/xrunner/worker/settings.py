"""The worker's settings, and the relations its lease numbers must keep."""

from __future__ import annotations

from typing import Literal

from xrunner.servicekit.settings import CommonSettings


class WorkerSettings(CommonSettings, kw_only=True, frozen=True):
    http_port: int = 8704
    worker_id: str = ""
    pool: str = "default"
    slots: int = 4
    cpu_millis: int = 0
    memory_mib: int = 0
    gpu: int = 0
    sandbox: Literal["bwrap", "none"] = "bwrap"  # `none` runs jobs unsandboxed: only when the operator asks
    workspace_dir: str = "/tmp/xrunner-workspaces"
    kill_grace_s: float = 5.0
    drain_grace_s: float = 30.0
    heartbeat_s: float = 1.0
    # Self-fencing (docs/worker.md): with no renewal of its heartbeat for `lease_s - fence_margin_s`, the reaper
    # kills this worker's jobs; the scheduler declares them lost only after `lease_s + fence_margin_s`. Both
    # services read the same XR_WORKER_LEASE_S and XR_WORKER_FENCE_MARGIN_S.
    lease_s: float = 5.0
    fence_margin_s: float = 1.5
    log_chunk_bytes: int = 65_536
    log_flush_s: float = 0.02
    max_log_bytes: int = 64 * 1024 * 1024
    max_line_bytes: int = 1024 * 1024  # longer lines are cut, with a marker
    artifact_store: Literal["local", "s3"] = "local"
    artifact_dir: str = "/tmp/xrunner-artifacts"
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    max_artifact_bytes: int = 1024 * 1024 * 1024  # per file
    max_artifacts: int = 1000  # files per attempt (the job's log is not counted)
    max_artifacts_total_bytes: int = 1024 * 1024 * 1024  # all files of an attempt together (the log not counted)
    max_pids: int = 512
    warm_shells: int = 8  # process jobs: shells started and put in spare cgroups ahead of jobs (0: none)
    allow_network: bool = False  # a job that asks for network (either sandbox) gets it only when the operator allows
    docker: Literal["auto", "on", "off"] = "auto"  # auto: docker workloads only when the daemon answers at start
    docker_url: str = "unix:///var/run/docker.sock"
    docker_pull: bool = False  # pull a missing image (a registry must be reachable) instead of failing the job
    warm_images: str = ""  # "image=N,image2": N warm containers of image (warm_pool_size when N is left out)
    warm_pool_size: int = 2

    @property
    def fence_after_s(self) -> float:
        """How long without a renewal before the reaper kills this worker's jobs."""
        return self.lease_s - self.fence_margin_s

    def check_lease(self) -> None:
        """Refuse to start with numbers that cannot fence in time: several heartbeats fit before the fence, and
        the fence comes a margin before the lease ends (heartbeat_s * 2 <= fence_after < lease < lost_after)."""
        if self.fence_margin_s <= 0 or self.heartbeat_s <= 0:
            raise ValueError("fence_margin_s and heartbeat_s must be positive")
        if self.heartbeat_s * 2 > self.fence_after_s:
            raise ValueError(f"fence_after (lease_s {self.lease_s:g} - fence_margin_s {self.fence_margin_s:g}) must "
                             f"leave room for two heartbeats of {self.heartbeat_s:g}s")
