"""The gateway's settings."""

from __future__ import annotations

from xrunner.servicekit.settings import CommonSettings


class GatewaySettings(CommonSettings, kw_only=True, frozen=True):
    http_port: int = 8700
    schema: str = "gateway"
    decision_wait_s: float = 0.5
    max_body_bytes: int = 4_194_304
    tenant_claim: str = "tenant"
    request_rate_per_s: float = 200.0  # per tenant, token bucket in each gateway's memory; 0 turns it off
    request_burst: int = 400
    artifacts_url: str = ""  # where the artifacts API is, for the link in this API's OpenAPI document
    cors_origins: list[str] = []  # origins a browser frontend may call from; empty: no CORS headers at all
