"""The artifact service's settings."""

from __future__ import annotations

from typing import Literal

from xrunner.servicekit.settings import CommonSettings

MAX_URL_TTL_S = 300.0


class ArtifactsSettings(CommonSettings, kw_only=True, frozen=True):
    http_port: int = 8702
    schema: str = "artifacts"
    tenant_claim: str = "tenant"
    cors_origins: list[str] = []  # origins a browser frontend may call from; empty: no CORS headers at all
    # The object store the workers write (the same values as theirs: share them as XR_ARTIFACT_STORE, ...).
    artifact_store: Literal["local", "s3"] = "local"
    artifact_dir: str = "/tmp/xrunner-artifacts"
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    # Signed URLs: `kid:secret,kid:secret` — the first key signs, every one verifies (rotate by putting a new key
    # first and dropping the old one once its URLs have expired). Empty: one key derived from the JWT secret.
    signing_keys: str = ""
    url_ttl_s: float = MAX_URL_TTL_S  # at most 300 s
    public_url: str = ""  # the base of the URLs it signs for the local store; empty: http://<http_host>:<port>
    sweep_interval_s: float = 60.0  # how often retention looks for expired artifacts
    sweep_batch: int = 500
    # Previews (docs/artifacts.md#previews): one file at a time in a child process under these limits.
    previews: bool = True
    preview_max_bytes: int = 256 * 1024 * 1024  # larger artifacts get no preview (they are not even fetched)
    preview_timeout_s: float = 20.0
    preview_cpu_s: int = 10
    preview_memory_bytes: int = 1024 * 1024 * 1024
