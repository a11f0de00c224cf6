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
    # The web console (served under /console/ when console_dir names its build; see docs/console.md).
    console_dir: str = ""  # the console's build (web/console/dist); empty: not served
    realtime_url: str = ""  # the realtime edge's public URL, for the console's config.json
    console_token_signin: bool = True  # offer the paste-a-token form and `#token=` sign-in links
    console_oidc_issuer: str = ""  # OIDC sign-in (authorization code + PKCE) when issuer and client id are set
    console_oidc_client_id: str = ""
    console_oidc_scope: str = "openid"
    console_oidc_audience: str = ""
