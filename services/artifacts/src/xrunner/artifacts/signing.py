"""Signs and checks the artifact service's own download URLs: HMAC-SHA256 over the method, the object key, the expiry
and the tenant, with keys named by id so that they rotate (the first key signs, every key verifies).

The URL carries only the expiry, the key id and the signature; the object key and the tenant are looked up from the
artifact id in the path, so a URL reveals neither a filesystem path nor another tenant's key, and a signature made
for one object or tenant never verifies for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Literal

KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MIN_SECRET_BYTES = 16

Refusal = Literal["expired", "unknown_key", "bad_signature"]


@dataclass(frozen=True, slots=True)
class Signature:
    expires: int  # unix seconds
    kid: str
    sig: str  # base64url without padding


def message(method: str, key: str, expires: int, tenant: str) -> bytes:
    """What is signed: fields joined by a byte no field may hold (keys and tenants never contain NUL)."""
    return b"\x00".join((method.upper().encode(), key.encode(), str(expires).encode(), tenant.encode()))


@dataclass(frozen=True, slots=True)
class Keyring:
    """Signing keys by id, the signing one first."""

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """`kid:secret,kid:secret` (the first signs); ValueError on a malformed, short or repeated key."""
        keys: list[tuple[str, bytes]] = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            kid, sep, secret = item.partition(":")
            if not sep or not KID.match(kid):
                raise ValueError(f"a signing key is `id:secret` with an id of [A-Za-z0-9_-]{{1,32}}, not {kid!r}")
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"signing key {kid!r} is shorter than {MIN_SECRET_BYTES} bytes")
            if kid in dict(keys):
                raise ValueError(f"signing key {kid!r} is given twice")
            keys.append((kid, secret.encode()))
        if not keys:
            raise ValueError("no signing keys")
        return cls(tuple(keys))

    @classmethod
    def derived(cls, secret: str) -> Keyring:
        """One key (`k0`) derived from another secret, for a stack configured with a JWT secret only."""
        return cls((("k0", hmac.digest(secret.encode(), b"xrunner artifact urls", hashlib.sha256)),))

    def sign(self, method: str, key: str, expires: int, tenant: str) -> Signature:
        kid, secret = self.keys[0]
        return Signature(expires, kid, _mac(secret, message(method, key, expires, tenant)))

    def check(self, method: str, key: str, tenant: str, given: Signature, now: float) -> Refusal | None:
        """None when `given` is this ring's signature of the request and has not expired; else why not."""
        secret = dict(self.keys).get(given.kid)
        if secret is None:
            return "unknown_key"
        expected = _mac(secret, message(method, key, given.expires, tenant))
        if not hmac.compare_digest(expected.encode(), given.sig.encode()):
            return "bad_signature"
        return "expired" if given.expires < now else None


def _mac(secret: bytes, data: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.digest(secret, data, hashlib.sha256)).rstrip(b"=").decode()
