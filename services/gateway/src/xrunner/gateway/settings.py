"""The gateway's settings."""

from __future__ import annotations

from xrunner.servicekit.settings import CommonSettings


class GatewaySettings(CommonSettings, kw_only=True, frozen=True):
    http_port: int = 8700
    schema: str = "gateway"
    decision_wait_s: float = 0.5
    max_body_bytes: int = 4_194_304
    tenant_claim: str = "tenant"
