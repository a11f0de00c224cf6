"""Routes on the job collection: submit one job or a batch, and the filtered, paginated list."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from xrunner.contracts.api import BatchAccepted, JobAccepted, JobList, JobView, SubmitBatch
from xrunner.contracts.spec import JobSpec
from xrunner.gateway.batch import submit_batch
from xrunner.gateway.bodies import refuse_any_too_large, refuse_too_large
from xrunner.gateway.jobs import Jobs
from xrunner.gateway.listing import BadCursor, list_jobs
from xrunner.gateway.problems import ProblemError
from xrunner.gateway.routes import JOB_ID, READ, WRITE, find_job, principal

STATES = "submitted|queued|rejected|dispatched|running|succeeded|failed|timed_out|cancelled|expired"


def accepted(view: JobView, created: bool) -> Response[JobAccepted]:
    """201 when admission queued the job, 202 when it has not decided yet, 429 + Retry-After when it refused."""
    if view.state == "rejected":
        retry = view.retry_after_s or 1.0
        raise ProblemError(429, view.reason or "rejected", "Admission refused the job", detail=view.id,
                           retry_after_s=retry, cause=view.reason, headers={"Retry-After": str(math.ceil(retry))})
    status = 202 if view.state == "submitted" else (201 if created else 200)
    return Response(JobAccepted(job=view, created=created), status_code=status,
                    headers={"Location": f"/v1/jobs/{view.id}"})


class CollectionRoutes(Controller):
    path = "/v1/jobs"
    tags = ["jobs"]

    @get("/", guards=READ)
    async def list_jobs(
        self,
        request: Request[Any, Any, State],
        states: Annotated[
            list[str] | None, Parameter(query="state", description="Only jobs in these states (repeatable)")
        ] = None,
        label: Annotated[list[str] | None, Parameter(description="key=value; every one must match")] = None,
        created_after: Annotated[datetime | None, Parameter(description="Only jobs created after this")] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Parameter(max_length=512)] = None,
    ) -> JobList:
        """The caller's jobs, newest first; follow `next_cursor` for the next page."""
        states = states or []
        if any(s not in STATES.split("|") for s in states):
            raise ProblemError(400, "invalid_request", "Unknown state", field="state", detail=",".join(states))
        if any("=" not in item for item in label or []):
            raise ProblemError(400, "invalid_request", "A label filter is key=value", field="label")
        labels = dict(item.split("=", 1) for item in label or [])
        jobs: Jobs = request.app.state.jobs
        try:
            return await list_jobs(jobs.pool, principal(request).tenant, states=states, labels=labels,
                                   created_after=created_after, limit=limit, cursor=cursor)
        except BadCursor as exc:
            raise ProblemError(400, "invalid_cursor", "Unknown cursor", field="cursor") from exc

    @post("/", status_code=201, guards=WRITE)
    async def submit(
        self,
        request: Request[Any, Any, State],
        data: JobSpec,
        idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key", max_length=255)] = None,
    ) -> Response[JobAccepted]:
        """Submit a job. 201 when admission queued it, 202 when it has not decided yet, 429 when it refused."""
        refuse_too_large(data)
        jobs: Jobs = request.app.state.jobs
        return accepted(*await jobs.submit(principal(request), data, idempotency_key))

    @post("/{job_id:str}/rerun", status_code=201, guards=WRITE)
    async def rerun(self, request: Request[Any, Any, State], job_id: JOB_ID) -> Response[JobAccepted]:
        """Submit a new job with the same spec as this one (admitted like any submit)."""
        who = principal(request)
        jobs: Jobs = request.app.state.jobs
        original = await find_job(jobs, who, job_id)
        return accepted(*await jobs.submit(who, original.spec, None, rerun_of=original.id))

    @post("/batch", status_code=202, guards=WRITE)
    async def submit_batch(
        self,
        request: Request[Any, Any, State],
        data: SubmitBatch,
        idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key", max_length=200)] = None,
    ) -> Response[BatchAccepted]:
        """Submit up to 1,000 jobs; each result says whether that job was queued, is awaiting admission, or was
        refused (with its problem). With an Idempotency-Key, a repeat returns the same jobs."""
        refuse_any_too_large(data.jobs)
        results = await submit_batch(request.app.state.jobs, principal(request), data.jobs, idempotency_key)
        return Response(BatchAccepted(results=results), status_code=202)
