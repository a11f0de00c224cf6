"""Routes on jobs: submit one or a batch, list them, and for one job its view, cancel, rerun and history."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import HeaderParameter, JSONBody, Parameter, QueryParameter

from xrunner.contracts.api import BatchAccepted, CancelJob, HistoryEntry, JobAccepted, JobList, JobView, SubmitBatch
from xrunner.contracts.spec import JobSpec
from xrunner.gateway.asof import job_as_of, parse_point
from xrunner.gateway.batch import submit_batch
from xrunner.gateway.bodies import refuse_any_too_large, refuse_too_large
from xrunner.gateway.dependencies import JobHistories, JobsService, Table, Who
from xrunner.gateway.jobs import Jobs
from xrunner.gateway.listing import BadCursor
from xrunner.servicekit.auth import Principal
from xrunner.servicekit.eventstore import ConflictError
from xrunner.servicekit.guards import READ, WRITE
from xrunner.servicekit.problems import ProblemError

JOB_ID = Annotated[str, Parameter(pattern=r"^[0-9a-z]{1,64}$", description="A job id")]
AS_OF = Annotated[str | None, Parameter(max_length=64, description=(
    "The job as of this point of its history: a sequence of the log (the `seq` of `GET /v1/jobs/{job_id}/events`) "
    "or an RFC 3339 date-time (its events that occurred by then)"))]
STATES = "submitted|queued|rejected|dispatched|running|succeeded|failed|timed_out|cancelled|expired"


def job_not_found(job_id: str) -> ProblemError:
    """Another tenant's job is indistinguishable from a missing one."""
    return ProblemError(404, "job_not_found", "No such job", detail=job_id)


async def find_job(jobs: Jobs, who: Principal, job_id: str) -> JobView:
    view = await jobs.get(who.tenant, job_id)
    if view is None:
        raise job_not_found(job_id)
    return view


def accepted(view: JobView, created: bool) -> Response[JobAccepted]:
    """201 when admission queued the job, 202 when it has not decided yet, 429 + Retry-After when it refused."""
    if view.state == "rejected":
        retry = view.retry_after_s or 1.0
        raise ProblemError(429, view.reason or "rejected", "Admission refused the job", detail=view.id,
                           retry_after_s=retry, cause=view.reason, headers={"Retry-After": str(math.ceil(retry))})
    status = 202 if view.state == "submitted" else (201 if created else 200)
    return Response(JobAccepted(job=view, created=created), status_code=status,
                    headers={"Location": f"/v1/jobs/{view.id}"})


def refuse_a_number_as_time(raw: str | None) -> None:
    """`created_after` is an RFC 3339 date-time; the query parser would also take a bare number (seconds since the
    epoch), which the OpenAPI document does not allow, so a number is refused rather than guessed at."""
    if raw is not None and raw.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ProblemError(400, "invalid_request", "created_after is an RFC 3339 date-time, not a number",
                           field="created_after", detail=raw[:64])


class JobRoutes(Controller):
    path = "/v1/jobs"
    tags = ["jobs"]

    @get("/", opt=READ)
    async def list_jobs(
        self,
        request: Request[Any, Any, Any],
        who: Who,
        table: Table,
        states: Annotated[
            list[str] | None, QueryParameter(name="state", description="Only jobs in these states (repeatable)")
        ] = None,
        label: Annotated[list[str] | None, Parameter(description="key=value; every one must match")] = None,
        created_after: Annotated[datetime | None, Parameter(description="Only jobs created after this")] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Parameter(max_length=512)] = None,
    ) -> JobList:
        """The caller's jobs, newest first; follow `next_cursor` for the next page."""
        refuse_a_number_as_time(request.query_params.get("created_after"))
        states = states or []
        if any(s not in STATES.split("|") for s in states):
            raise ProblemError(400, "invalid_request", "Unknown state", field="state", detail=",".join(states))
        if any("=" not in item for item in label or []):
            raise ProblemError(400, "invalid_request", "A label filter is key=value", field="label")
        labels = dict(item.split("=", 1) for item in label or [])
        try:
            return await table.page(who.tenant, states=states, labels=labels, created_after=created_after,
                                    limit=limit, cursor=cursor)
        except BadCursor as exc:
            raise ProblemError(400, "invalid_cursor", "Unknown cursor", field="cursor") from exc

    @post("/", status_code=201, opt=WRITE)
    async def submit(
        self,
        who: Who,
        service: JobsService,
        data: JSONBody[JobSpec],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", max_length=255)] = None,
    ) -> Response[JobAccepted]:
        """Submit a job. 201 when admission queued it, 202 when it has not decided yet, 429 when it refused."""
        refuse_too_large(data)
        return accepted(*await service.submit(who, data, idempotency_key))

    @post("/{job_id:str}/rerun", status_code=201, opt=WRITE)
    async def rerun(self, who: Who, service: JobsService, job_id: JOB_ID) -> Response[JobAccepted]:
        """Submit a new job with the same spec as this one (admitted like any submit)."""
        original = await find_job(service, who, job_id)
        return accepted(*await service.submit(who, original.spec, None, rerun_of=original.id))

    @post("/batch", status_code=202, opt=WRITE)
    async def submit_batch(
        self,
        who: Who,
        service: JobsService,
        data: JSONBody[SubmitBatch],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", max_length=200)] = None,
    ) -> Response[BatchAccepted]:
        """Submit up to 1,000 jobs; each result says whether that job was queued, is awaiting admission, or was
        refused (with its problem). With an Idempotency-Key, a repeat returns the same jobs."""
        refuse_any_too_large(data.jobs)
        results = await submit_batch(service, who, data.jobs, idempotency_key)
        return Response(BatchAccepted(results=results), status_code=202)

    @get("/{job_id:str}", opt=READ)
    async def get_job(self, who: Who, service: JobsService, histories: JobHistories, job_id: JOB_ID,
                      as_of: AS_OF = None) -> JobView:
        """One job of the caller's tenant; with `as_of`, as it was at that event of the log."""
        if as_of is None:
            return await find_job(service, who, job_id)
        view = await job_as_of(histories, who.tenant, job_id, parse_point(as_of))
        if view is None:
            raise job_not_found(job_id)
        return view

    @post("/{job_id:str}/cancel", status_code=202, opt=WRITE)
    async def cancel(
        self, who: Who, service: JobsService, job_id: JOB_ID, data: JSONBody[CancelJob | None] = None
    ) -> JobView:
        """Ask the job to stop (idempotent); 409 `job_finished` when it has already ended."""
        await find_job(service, who, job_id)
        try:
            outcome = await service.cancel(who, job_id, data.reason if data else "")
        except ConflictError as exc:
            raise ProblemError(503, "job_busy", "The job kept changing; retry", headers={"Retry-After": "1"}) from exc
        if outcome is None:
            raise job_not_found(job_id)
        view, what = outcome
        if what == "finished":
            raise ProblemError(409, "job_finished", "The job has already finished", detail=view.state)
        return view

    @get("/{job_id:str}/events", opt=READ)
    async def events(self, who: Who, service: JobsService, job_id: JOB_ID) -> list[HistoryEntry]:
        """The job's history from the log, oldest first."""
        history = await service.history(who.tenant, job_id)
        if not history:
            raise job_not_found(job_id)
        return history
