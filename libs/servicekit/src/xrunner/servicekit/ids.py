"""Identifiers: time-ordered, lowercase, safe as NATS subject tokens."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase


def new_id(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits, so ids sort by creation time."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def created_at(ulid: str) -> datetime | None:
    """When a `new_id` was made (its first 48 bits); None when `ulid` is not one."""
    if len(ulid) != 26 or any(c not in _ALPHABET for c in ulid):
        return None
    ms = 0
    for c in ulid[:10]:
        ms = ms * 32 + _ALPHABET.index(c)
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (ValueError, OverflowError, OSError):  # a well-formed id from past the year 9999
        return None
