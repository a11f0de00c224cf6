"""The API over the scheduler's snapshot: queue and pool stats, why a job waits, and admission dry-runs."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Controller, get, post
from litestar.params import JSONBody

from xrunner.contracts.spec import JobSpec
from xrunner.contracts.stats import DryRun, Explain, StatsView
from xrunner.gateway import diagnosis, snapshot
from xrunner.gateway.bodies import refuse_too_large
from xrunner.gateway.dependencies import JobsService, Stream, Who
from xrunner.gateway.routes.jobs import JOB_ID, find_job
from xrunner.servicekit.guards import READ, WRITE


class StatsRoutes(Controller):
    path = "/v1"
    tags = ["stats"]

    @get("/stats", opt=READ)
    async def stats(self, who: Who, js: Stream) -> StatsView:
        """The pools and the caller's tenant; every tenant for an admin."""
        snap = await snapshot.read(js, None if "admin" in who.scopes else [who.tenant])
        found = snap.global_stats
        return StatsView(
            at=snap.at,
            pools=list(found.pools) if found else [],
            tenants=list(snap.tenants.values()),
            queued_total=found.queued if found else 0,
            running_total=found.running if found else 0,
            dispatched_total=found.dispatched if found else 0,
            dispatch_p50_ms=found.dispatch_p50_ms if found else None,
            dispatch_p99_ms=found.dispatch_p99_ms if found else None,
        )

    @get("/jobs/{job_id:str}/explain", opt=READ)
    async def explain(self, who: Who, service: JobsService, js: Stream, job_id: JOB_ID) -> Explain:
        """Why the job is where it is: its reason to wait, position and ETA as the scheduler last published."""
        view = await find_job(service, who, job_id)
        snap = await snapshot.read(js, [who.tenant])
        return diagnosis.explain(
            view, snap.tenants.get(who.tenant), snap.limits(who.tenant), snap.at, datetime.now(UTC)
        )

    @post("/jobs/dry-run", status_code=200, opt=WRITE)
    async def dry_run(self, who: Who, js: Stream, data: JSONBody[JobSpec]) -> DryRun:
        """What admission would decide for this spec now; appends nothing."""
        refuse_too_large(data)
        snap = await snapshot.read(js, [who.tenant])
        return diagnosis.dry_run(
            data, snap.tenants.get(who.tenant), snap.global_stats, snap.limits(who.tenant), datetime.now(UTC)
        )
