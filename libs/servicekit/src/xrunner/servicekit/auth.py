"""Verifies JWT bearer tokens and turns them into a principal: who, which tenant, which scopes."""

from __future__ import annotations

import re
from dataclasses import dataclass

import jwt

SCOPES = ("jobs:read", "jobs:write", "admin")
TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # tenants are NATS subject tokens


class AuthError(Exception):
    """The token is missing, malformed, expired, for someone else, or lacks the tenant claim."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    tenant: str
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class JwtVerifier:
    """HS256 with a shared secret; the algorithm is pinned, `exp`, `iss` and `aud` are required."""

    def __init__(self, secret: str, *, issuer: str, audience: str, tenant_claim: str = "tenant") -> None:
        if not secret:
            raise ValueError("a JWT secret is required (XR_JWT_SECRET)")
        self._secret, self.issuer, self.audience, self.tenant_claim = secret, issuer, audience, tenant_claim

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(str(exc)) from exc
        tenant = claims.get(self.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise AuthError(f"token has no {self.tenant_claim!r} claim")
        if not TENANT.match(tenant):
            raise AuthError(f"the {self.tenant_claim!r} claim is not a valid tenant id (a-z, 0-9, _ and -)")
        raw_scopes = claims.get("scope", "")
        scopes = raw_scopes.split() if isinstance(raw_scopes, str) else list(raw_scopes)
        return Principal(subject=str(claims["sub"]), tenant=tenant, scopes=frozenset(scopes))


def mint(
    secret: str, *, tenant: str, subject: str, scopes: list[str], issuer: str, audience: str, ttl_s: int, now: int
) -> str:
    """A signed HS256 token (for the embedded default and tests; production uses an identity provider)."""
    claims = {
        "sub": subject,
        "tenant": tenant,
        "scope": " ".join(scopes),
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header:
        raise AuthError("missing Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization must be 'Bearer <token>'")
    return token.strip()
