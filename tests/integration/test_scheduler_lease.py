"""The scheduler's lease on real NATS KV: one holder at a time; a scheduler restarted under the identity that holds
the lease takes it over at once (not after the TTL), and the process it replaced, were it still alive, stops acting
at its next renewal."""

from __future__ import annotations

import asyncio

import pytest
from support import declared_js

from xrunner.scheduler.leader import Lease, LeaseLost
from xrunner.servicekit.streams import LEASE_TTL_S


async def test_a_restart_under_the_holders_identity_takes_the_lease_at_once_and_fences_the_old_process(
    fresh_nats_url: str,
) -> None:
    async with declared_js(fresh_nats_url) as js:
        old = Lease(js, "s1")
        await old.acquire()
        standby = asyncio.create_task(Lease(js, "s2").acquire(poll_s=0.05))
        restarted = Lease(js, "s1")
        # it polls once an hour: only taking the lease over can return in time (the TTL alone is LEASE_TTL_S)
        await asyncio.wait_for(restarted.acquire(poll_s=3600), timeout=2 * LEASE_TTL_S)
        try:
            assert restarted.held and restarted.revision > old.revision
            assert not standby.done(), "another identity still waits for the lease"
            with pytest.raises(LeaseLost):
                await old.hold(every_s=0.01)
            assert not old.held
        finally:
            standby.cancel()
            await asyncio.gather(standby, return_exceptions=True)
