"""The artifact service's settings."""

from __future__ import annotations

from xrunner.servicekit.settings import CommonSettings


class ArtifactsSettings(CommonSettings, kw_only=True, frozen=True):
    http_port: int = 8702
    schema: str = "artifacts"
