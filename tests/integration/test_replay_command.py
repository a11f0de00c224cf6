"""`python -m xrunner.scheduler replay` over a log the real scheduler wrote (scheduler, gateway and two workers as
processes): every recorded dispatch carries why, replaying them finds no difference, and an override answers what
would have happened."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from integration.cluster import Cluster
from integration.test_poison import every_tenants_jobs_done, process, submit
from integration.test_scheduler import base, configure, log
from support import wait_until

from xrunner.contracts import events as ev

TENANTS = ("light", "heavy", "other")


def replay(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
    env |= {"XR_NATS_URL": cluster.nats_url, "XR_DATABASE_URL": cluster.database_url, "XR_LOG_LEVEL": "warning"}
    return subprocess.run([sys.executable, "-m", "xrunner.scheduler", "replay", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


async def test_the_real_schedulers_decisions_replay_without_a_difference_and_an_override_moves_them(
        cluster: Cluster) -> None:
    await configure(cluster.nats_url, "heavy", weight=3.0, max_inflight=3)
    base(cluster, workers=2, slots=2)
    async with cluster.client(TENANTS[0]) as a, cluster.client(TENANTS[1]) as b, cluster.client(TENANTS[2]) as c:
        ids = {client: await asyncio.gather(*(submit(client, process("sleep", "0.2")) for _ in range(12)))
               for client in (a, b, c)}
        await wait_until(lambda: every_tenants_jobs_done({k: list(v) for k, v in ids.items()}), timeout=90,
                         what="every job to finish")
    dispatched = [e for _, e in await log(cluster.nats_url) if isinstance(e, ev.JobDispatched)]
    assert len(dispatched) >= 36 and all(e.why is not None for e in dispatched)
    checked = replay(cluster)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(dispatched)} recorded dispatches" in checked.stdout, checked.stdout
    assert "the replay equals the recorded decisions" in checked.stdout, checked.stdout
    moved = replay(cluster, "--set", "tenant.light.weight=20", "--set", "pool.default.slots=1")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "36 jobs:" in moved.stdout and "later" in moved.stdout, moved.stdout
    refused = replay(cluster, "--set", "tenant.light.colour=red")
    assert refused.returncode == 2 and "tenant.<name>" in refused.stderr, refused.stderr
