"""The realtime edge's settings."""

from __future__ import annotations

from xrunner.servicekit.settings import CommonSettings


class RealtimeSettings(CommonSettings, kw_only=True, frozen=True):
    http_port: int = 8701
    client_buffer: int = 1000
    ping_s: float = 15.0
    max_connections_per_tenant: int = 2000
    max_connections_per_subject: int = 500
    tenant_claim: str = "tenant"
    cors_origins: list[str] = []  # origins a browser frontend may call from; empty: no CORS headers at all
