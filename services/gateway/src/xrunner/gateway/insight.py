"""The API over the scheduler's snapshot: queue and pool stats, why a job waits, and admission dry-runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State

from xrunner.contracts.spec import JobSpec
from xrunner.contracts.stats import DryRun, Explain, StatsView
from xrunner.gateway import diagnosis, snapshot
from xrunner.gateway.bodies import refuse_too_large
from xrunner.gateway.jobs import Jobs
from xrunner.gateway.routes import JOB_ID, READ, WRITE, find_job, principal


class InsightRoutes(Controller):
    path = "/v1"
    tags = ["stats"]

    @get("/stats", guards=READ)
    async def stats(self, request: Request[Any, Any, State]) -> StatsView:
        """The pools and the caller's tenant; every tenant for an admin."""
        who = principal(request)
        jobs: Jobs = request.app.state.jobs
        snap = await snapshot.read(jobs.js, None if "admin" in who.scopes else [who.tenant])
        found = snap.global_stats
        return StatsView(
            at=snap.at,
            pools=list(found.pools) if found else [],
            tenants=list(snap.tenants.values()),
            queued_total=found.queued if found else 0,
            running_total=found.running if found else 0,
        )

    @get("/jobs/{job_id:str}/explain", guards=READ)
    async def explain(self, request: Request[Any, Any, State], job_id: JOB_ID) -> Explain:
        """Why the job is where it is: its reason to wait, position and ETA as the scheduler last published."""
        who = principal(request)
        jobs: Jobs = request.app.state.jobs
        view = await find_job(jobs, who, job_id)
        snap = await snapshot.read(jobs.js, [who.tenant])
        return diagnosis.explain(
            view, snap.tenants.get(who.tenant), snap.limits(who.tenant), snap.at, datetime.now(UTC)
        )

    @post("/jobs/dry-run", status_code=200, guards=WRITE)
    async def dry_run(self, request: Request[Any, Any, State], data: JobSpec) -> DryRun:
        """What admission would decide for this spec now; appends nothing."""
        refuse_too_large(data)
        who = principal(request)
        jobs: Jobs = request.app.state.jobs
        snap = await snapshot.read(jobs.js, [who.tenant])
        return diagnosis.dry_run(
            data, snap.tenants.get(who.tenant), snap.global_stats, snap.limits(who.tenant), datetime.now(UTC)
        )
