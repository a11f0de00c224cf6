"""Verifies JWT bearer tokens and turns them into a principal: who, which tenant, which scopes."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from xrunner.servicekit.settings import CommonSettings

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


HMAC = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]
VERIFIED_FOR_S = 60.0  # a token verified this recently is not verified again (until its `exp`, at the latest)
VERIFIED_KEPT = 4096


class JwtVerifier:
    """Verifies a bearer token with either an HMAC secret or the public keys of a JWKS file or URL.

    The algorithms are pinned per key type and never mixed: with a secret only HS*, with JWKS only asymmetric ones,
    and with JWKS only the algorithm of the key the token's `kid` names. So `alg: none` and key confusion (an
    HS256 token signed with a public key as the secret) cannot verify. `exp`, `iss`, `aud` and `sub` are required.
    """

    def __init__(
        self,
        secret: str = "",
        *,
        issuer: str,
        audience: str,
        tenant_claim: str = "tenant",
        jwks_file: str = "",
        jwks_url: str = "",
        algorithms: Sequence[str] = (),
        leeway_s: float = 30.0,
    ) -> None:
        if sum(map(bool, (secret, jwks_file, jwks_url))) != 1:
            raise ValueError("configure exactly one of a JWT secret (XR_JWT_SECRET), XR_JWKS_FILE or XR_JWKS_URL")
        self.algorithms = _pinned(algorithms, symmetric=bool(secret))
        self.issuer, self.audience, self.tenant_claim, self.leeway_s = issuer, audience, tenant_claim, leeway_s
        self._secret = secret
        self._keys = _file_keys(jwks_file) if jwks_file else None
        self._client = jwt.PyJWKClient(jwks_url, lifespan=300, timeout=5.0) if jwks_url else None
        self._verified: dict[str, tuple[Principal, float]] = {}  # token -> principal, valid until (epoch s)
        self._lock = threading.Lock()

    @property
    def fetches_keys(self) -> bool:
        """Whether `verify` may block on the network (a JWKS URL whose cached key set is stale or lacks a kid)."""
        return self._client is not None

    def verify(self, token: str) -> Principal:
        """The token's principal. A client sends the same token with every request: one verified in the last
        `VERIFIED_FOR_S` is taken from memory until then or its `exp` (plus leeway), whichever is first."""
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and now < hit[1]:
            return hit[0]
        self._verified.pop(token, None)
        who, exp = self._verify(token)
        with self._lock:  # a verifier that fetches keys runs on threads
            if len(self._verified) >= VERIFIED_KEPT:
                self._verified.pop(next(iter(self._verified)))
            self._verified[token] = who, min(exp + self.leeway_s, now + VERIFIED_FOR_S)
        return who

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            key, algorithms = self._key_for(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(str(exc)) from exc
        return self._principal(claims), float(claims["exp"])

    def _key_for(self, token: str) -> tuple[Any, list[str]]:
        """The key to check `token` with and the one algorithm (or, for a secret, the pinned ones) it may use."""
        if self._secret:
            return self._secret, self.algorithms
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("token has no 'kid' header naming a key of the JWKS")
        jwk = self._jwk(kid)
        if jwk.algorithm_name not in self.algorithms:
            raise AuthError(f"key {kid!r} is for {jwk.algorithm_name}, which is not allowed")
        return jwk.key, [jwk.algorithm_name]

    def _jwk(self, kid: str) -> jwt.PyJWK:
        if self._client is not None:
            return self._client.get_signing_key(kid)  # cached; refetched at most every 30 s for an unknown kid
        assert self._keys is not None
        if kid not in self._keys:
            raise AuthError(f"no key {kid!r} in the JWKS")
        return self._keys[kid]

    def _principal(self, claims: dict[str, Any]) -> Principal:
        tenant = claims.get(self.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise AuthError(f"token has no {self.tenant_claim!r} claim")
        if not TENANT.match(tenant):
            raise AuthError(f"the {self.tenant_claim!r} claim is not a valid tenant id (a-z, 0-9, _ and -)")
        raw_scopes = claims.get("scope", "")
        scopes = raw_scopes.split() if isinstance(raw_scopes, str) else list(raw_scopes)
        subject = str(claims["sub"])
        if "\x00" in subject:  # it is written into events, which every projection must be able to store
            raise AuthError("the 'sub' claim contains a NUL character")
        return Principal(subject=subject, tenant=tenant, scopes=frozenset(scopes))


def _pinned(algorithms: Sequence[str], *, symmetric: bool) -> list[str]:
    """The allowed algorithms (by default HS256 for a secret, RS256 and ES256 for JWKS), all of the key's family."""
    family, default = (HMAC, ["HS256"]) if symmetric else (ASYMMETRIC, ["RS256", "ES256"])
    chosen = list(algorithms) or default
    wrong = sorted(set(chosen) - family)
    if wrong:
        raise ValueError(f"JWT algorithms {wrong} do not fit the configured key (allowed: {sorted(family)})")
    return chosen


def _file_keys(path: str) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS file by `kid` (keys without a kid, or for encryption, are ignored)."""
    keys = jwt.PyJWKSet.from_json(Path(path).read_text()).keys
    by_kid = {k.key_id: k for k in keys if k.key_id and k.public_key_use in ("sig", None)}
    if not by_kid:
        raise ValueError(f"{path} holds no signing keys with a 'kid'")
    return by_kid


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


def verifier_from(settings: CommonSettings, tenant_claim: str = "tenant") -> JwtVerifier:
    """The verifier a service's settings describe (an HS256 secret, or a JWKS file or URL)."""
    return JwtVerifier(
        settings.jwt_secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        tenant_claim=tenant_claim,
        jwks_file=settings.jwks_file,
        jwks_url=settings.jwks_url,
        algorithms=settings.jwt_algorithms,
        leeway_s=settings.jwt_leeway_s,
    )
