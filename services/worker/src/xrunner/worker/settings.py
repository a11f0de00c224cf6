"""The worker's settings."""

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
    max_artifact_bytes: int = 1024 * 1024 * 1024
    max_artifacts: int = 1000
    max_pids: int = 512
    allow_network: bool = False  # a job that asks for network (either sandbox) gets it only when the operator allows
    docker: Literal["auto", "on", "off"] = "auto"  # auto: docker workloads only when the daemon answers at start
    docker_url: str = "unix:///var/run/docker.sock"
    docker_pull: bool = False  # pull a missing image (a registry must be reachable) instead of failing the job
    warm_images: str = ""  # "image=N,image2": N warm containers of image (warm_pool_size when N is left out)
    warm_pool_size: int = 2
