"""The verifier remembers a token it verified (clients send the same one with every request), but never past its
expiry, and never a token it refused."""

from __future__ import annotations

import time

import jwt
import pytest

from xrunner.servicekit import auth
from xrunner.servicekit.auth import AuthError, JwtVerifier, mint

SECRET = "unit-secret-of-at-least-thirty-two-bytes"


def token(ttl_s: int = 600, tenant: str = "acme", secret: str = SECRET) -> str:
    return mint(secret, tenant=tenant, subject="alice", scopes=["jobs:read"], issuer="xrunner", audience="xrunner",
                ttl_s=ttl_s, now=int(time.time()))


def verifier(leeway_s: float = 30.0) -> JwtVerifier:
    return JwtVerifier(SECRET, issuer="xrunner", audience="xrunner", leeway_s=leeway_s)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens the verifier really checked (each call of jwt.decode)."""
    seen: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: object, **kwargs: object) -> object:
        seen.append(token)
        return real(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(auth.jwt, "decode", counting)
    return seen


def test_a_token_sent_again_is_not_verified_again(decodes: list[str]) -> None:
    checker, one, other = verifier(), token(), token(tenant="globex")
    tenants = [checker.verify(t).tenant for t in (one, one, other, one, other)]
    assert tenants == ["acme", "acme", "globex", "acme", "globex"]
    assert decodes == [one, other]


def test_a_refused_token_is_refused_every_time(decodes: list[str]) -> None:
    checker, forged = verifier(), token(secret="another-secret-of-at-least-32-bytes!")
    for _ in range(2):
        with pytest.raises(AuthError):
            checker.verify(forged)
    assert decodes == [forged, forged]


def test_a_remembered_token_still_expires(decodes: list[str]) -> None:
    checker, short = verifier(leeway_s=0), token(ttl_s=1)
    assert checker.verify(short).tenant == "acme"
    expiry = jwt.decode(short, options={"verify_signature": False})["exp"]
    deadline = time.monotonic() + 10
    while time.time() <= expiry + 1 and time.monotonic() < deadline:  # the clock passes the token's exp
        time.sleep(0.05)
    with pytest.raises(AuthError, match="expired"):
        checker.verify(short)
