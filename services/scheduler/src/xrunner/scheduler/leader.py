"""One active scheduler: a lease in KV `xr_leases`, created by whoever finds it free and renewed by its holder.

The bucket's TTL expires the key when the holder stops renewing, so a standby takes over within the lease. The
holder renews with compare-and-set on the key's revision: a holder that lost the key finds out at once and stops.

A scheduler restarted under the identity that still holds the lease (the same pod's container restarted, the
embedded supervisor's restart: an identity is one process at a time) takes it over at once, compare-and-set on its
revision, instead of waiting out the TTL of a holder that is known to be dead. Were that holder alive after all, its
next renewal fails on the new revision and it stops acting (LeaseLost), as when any standby takes over.
"""

from __future__ import annotations

import asyncio
import contextlib

from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from xrunner.contracts import subjects
from xrunner.servicekit.streams import LEASE_TTL_S

LEASE_KEY = "scheduler"


class LeaseLost(Exception):
    """Another scheduler holds the lease now; this one must stop acting."""


class Lease:
    def __init__(self, js: JetStreamContext, holder: str) -> None:
        self.js, self.holder = js, holder
        self.revision = 0
        self.held = False

    async def acquire(self, poll_s: float = LEASE_TTL_S / 5) -> None:
        kv = await self.js.key_value(subjects.LEASES_BUCKET)
        while True:
            try:
                self.revision = await kv.create(LEASE_KEY, self.holder.encode())
            except (KeyWrongLastSequenceError, APIError):
                if await self._reclaim(kv):
                    return
                await asyncio.sleep(poll_s)
                continue
            self.held = True
            return

    async def _reclaim(self, kv: KeyValue) -> bool:
        """Take over a lease that names this holder (its previous process died holding it); False otherwise."""
        try:
            entry = await kv.get(LEASE_KEY)
        except APIError:  # none (KeyNotFoundError), or the KV did not answer: poll again
            return False
        if entry.value != self.holder.encode():
            return False
        try:
            self.revision = await kv.update(LEASE_KEY, self.holder.encode(), last=entry.revision)
        except (KeyWrongLastSequenceError, APIError):
            return False
        self.held = True
        return True

    async def hold(self, every_s: float = LEASE_TTL_S / 5) -> None:
        """Renew until the lease is lost (raises LeaseLost)."""
        kv = await self.js.key_value(subjects.LEASES_BUCKET)
        while True:
            await asyncio.sleep(every_s)
            try:
                self.revision = await kv.update(LEASE_KEY, self.holder.encode(), last=self.revision)
            except (KeyWrongLastSequenceError, APIError) as exc:
                self.held = False
                raise LeaseLost(str(exc)) from exc

    async def release(self) -> None:
        """Give the lease up at once (a clean stop), so a standby need not wait for it to expire."""
        if not self.held:
            return
        self.held = False
        kv = await self.js.key_value(subjects.LEASES_BUCKET)
        with contextlib.suppress(KeyWrongLastSequenceError, APIError):
            await kv.delete(LEASE_KEY, last=self.revision)
