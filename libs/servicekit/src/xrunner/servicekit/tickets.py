"""Stream tickets: short-lived one-time JWTs the gateway mints for browsers (whose EventSource and WebSocket cannot
send an Authorization header) and the realtime edge accepts. Signed with a secret the two share."""

from __future__ import annotations

from typing import Any

import jwt

from xrunner.servicekit.auth import TENANT, AuthError, Principal

TICKET_ISSUER = "xrunner-gateway"
TICKET_AUDIENCE = "xrunner-realtime"
MAX_TTL_S = 60


def mint_ticket(secret: str, principal: Principal, *, ttl_s: int, jti: str, now: int) -> str:
    claims = {"sub": principal.subject, "tenant": principal.tenant, "scope": " ".join(sorted(principal.scopes)),
              "iss": TICKET_ISSUER, "aud": TICKET_AUDIENCE, "iat": now, "exp": now + min(ttl_s, MAX_TTL_S),
              "jti": jti}
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_ticket(secret: str, ticket: str) -> tuple[Principal, str, float]:
    """(who, jti, expiry) of a valid ticket; AuthError otherwise. One-time use is the caller's job."""
    try:
        claims: dict[str, Any] = jwt.decode(ticket, secret, algorithms=["HS256"], audience=TICKET_AUDIENCE,
                                            issuer=TICKET_ISSUER, options={"require": ["exp", "jti", "sub", "tenant"]})
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid stream ticket: {exc}") from exc
    tenant = claims["tenant"]
    if not isinstance(tenant, str) or not TENANT.match(tenant):
        raise AuthError("invalid stream ticket: bad tenant")
    scopes = frozenset(str(claims.get("scope", "")).split())
    return Principal(subject=str(claims["sub"]), tenant=tenant, scopes=scopes), str(claims["jti"]), float(claims["exp"])
