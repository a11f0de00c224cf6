"""The gateway's HTTP API (v1) for jobs, and the guards every route module shares."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Parameter
from litestar.types import Guard

from xrunner.contracts import codec
from xrunner.contracts.api import CancelJob, HistoryEntry, JobLog, JobView, Whoami
from xrunner.gateway.jobs import Jobs
from xrunner.gateway.problems import ProblemError
from xrunner.servicekit.auth import AuthError, JwtVerifier, Principal, bearer
from xrunner.servicekit.eventstore import ConflictError

JOB_ID = Annotated[str, Parameter(pattern=r"^[0-9a-z]{1,64}$", description="A job id")]


QUERY_TOKENS = frozenset({"access_token", "token", "jwt", "bearer"})  # never accepted: URLs end up in logs


def requires(scope: str) -> Guard:
    """A guard that authenticates the bearer token before anything else (even body parsing) and checks `scope`;
    the principal is left in `connection.state.principal`. A token in the query string is refused outright."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        try:
            who = await authenticate(connection)
        except AuthError as exc:
            raise ProblemError(
                401,
                "unauthenticated",
                "Missing or invalid bearer token",
                detail=str(exc),
                headers={"WWW-Authenticate": 'Bearer realm="xrunner"'},
            ) from exc
        if not who.can(scope):
            raise ProblemError(403, "forbidden", f"This token lacks the {scope!r} scope")
        connection.state.principal = who

    return guard


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The principal of the request's Authorization header; a verifier that may fetch keys runs off the loop."""
    if any(name.lower() in QUERY_TOKENS for name in connection.query_params):
        raise AuthError("tokens are not accepted in the query string; send them in the Authorization header")
    verifier: JwtVerifier = connection.app.state.verifier
    token = bearer(connection.headers.get("authorization"))
    if verifier.fetches_keys:
        return await anyio.to_thread.run_sync(verifier.verify, token)
    return verifier.verify(token)


def principal(request: Request[Any, Any, State]) -> Principal:
    who: Principal = request.state.principal
    return who


READ, WRITE, ADMIN = [requires("jobs:read")], [requires("jobs:write")], [requires("admin")]


def job_not_found(job_id: str) -> ProblemError:
    """Another tenant's job is indistinguishable from a missing one."""
    return ProblemError(404, "job_not_found", "No such job", detail=job_id)


async def find_job(jobs: Jobs, who: Principal, job_id: str) -> JobView:
    view = await jobs.get(who.tenant, job_id)
    if view is None:
        raise job_not_found(job_id)
    return view


async def _ndjson_log(jobs: Jobs, view: JobView, offset: int, limit: int) -> Response[bytes]:
    pieces, complete = await jobs.log_pieces(view, offset, limit)
    lines = [codec.encode({"stream": stream, "offset": at, "text": data.decode("utf-8", errors="replace")})
             for stream, at, data in pieces]
    end = pieces[-1][1] + len(pieces[-1][2]) if pieces else offset
    lines.append(codec.encode({"next_offset": end, "complete": complete}))
    headers = {"X-Next-Offset": str(end), "X-Log-Complete": str(complete).lower()}
    return Response(b"\n".join(lines) + b"\n", headers=headers, media_type="application/x-ndjson")


class JobRoutes(Controller):
    path = "/v1"
    tags = ["jobs"]

    @get("/jobs/{job_id:str}", guards=READ)
    async def get_job(self, request: Request[Any, Any, State], job_id: JOB_ID) -> JobView:
        """One job of the caller's tenant."""
        who = principal(request)
        return await find_job(request.app.state.jobs, who, job_id)

    @get("/jobs/{job_id:str}/logs", media_type="text/plain; charset=utf-8", guards=READ)
    async def get_logs(
        self,
        request: Request[Any, Any, State],
        job_id: JOB_ID,
        offset: Annotated[int, Parameter(ge=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=16 * 1024 * 1024)] = 4 * 1024 * 1024,
        format: Annotated[str, Parameter(pattern="^(text|json|ndjson)$")] = "text",
    ) -> Response[Any]:
        """The output of the job's current attempt from byte `offset`: text, JSON with `next_offset`, or NDJSON
        chunks (`{"stream", "offset", "text"}` lines, then a `{"next_offset", "complete"}` line)."""
        who = principal(request)
        jobs: Jobs = request.app.state.jobs
        view = await find_job(jobs, who, job_id)
        if format == "ndjson":
            return await _ndjson_log(jobs, view, offset, limit)
        log: JobLog = await jobs.log(view, offset, limit)
        headers = {"X-Next-Offset": str(log.next_offset), "X-Log-Complete": str(log.complete).lower()}
        if format == "json":
            return Response(log, headers=headers, media_type="application/json")
        return Response(log.text, headers=headers, media_type="text/plain; charset=utf-8")

    @post("/jobs/{job_id:str}/cancel", status_code=202, guards=WRITE)
    async def cancel(self, request: Request[Any, Any, State], job_id: JOB_ID, data: CancelJob | None = None) -> JobView:
        """Ask the job to stop (idempotent); 409 `job_finished` when it has already ended."""
        who = principal(request)
        jobs: Jobs = request.app.state.jobs
        await find_job(jobs, who, job_id)
        try:
            outcome = await jobs.cancel(who, job_id, data.reason if data else "")
        except ConflictError as exc:
            raise ProblemError(503, "job_busy", "The job kept changing; retry", headers={"Retry-After": "1"}) from exc
        if outcome is None:
            raise job_not_found(job_id)
        view, what = outcome
        if what == "finished":
            raise ProblemError(409, "job_finished", "The job has already finished", detail=view.state)
        return view

    @get("/jobs/{job_id:str}/events", guards=READ)
    async def events(self, request: Request[Any, Any, State], job_id: JOB_ID) -> list[HistoryEntry]:
        """The job's history from the log, oldest first."""
        who = principal(request)
        jobs: Jobs = request.app.state.jobs
        history = await jobs.history(who.tenant, job_id)
        if not history:
            raise job_not_found(job_id)
        return history

    @get("/whoami", tags=["auth"], guards=READ)
    async def whoami(self, request: Request[Any, Any, State]) -> Whoami:
        who = principal(request)
        return Whoami(subject=who.subject, tenant=who.tenant, scopes=sorted(who.scopes))
