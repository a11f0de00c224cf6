"""The artifact service's settings."""

from __future__ import annotations

from typing import Literal

from xrunner.servicekit.settings import CommonSettings


class ArtifactsSettings(CommonSettings, kw_only=True, frozen=True):
    http_port: int = 8702
    schema: str = "artifacts"
    # The object store the workers write (the same values as theirs: share them as XR_ARTIFACT_STORE, ...).
    artifact_store: Literal["local", "s3"] = "local"
    artifact_dir: str = "/tmp/xrunner-artifacts"
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    # Previews (docs/artifacts.md#previews): one file at a time in a child process under these limits.
    previews: bool = True
    preview_max_bytes: int = 256 * 1024 * 1024  # larger artifacts get no preview (they are not even fetched)
    preview_timeout_s: float = 20.0
    preview_cpu_s: int = 10
    preview_memory_bytes: int = 1024 * 1024 * 1024
