"""The realtime edge's HTTP API: `GET /v1/events` and `GET /v1/jobs/{id}/logs/stream` as Server-Sent Events."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import Parameter, QueryParameter
from litestar.response import ServerSentEventMessage, Stream
from nats.js import JetStreamContext

from xrunner.contracts import subjects
from xrunner.realtime import sse
from xrunner.realtime.hub import Hub
from xrunner.realtime.tickets import Authenticator, Session
from xrunner.servicekit import problems
from xrunner.servicekit.auth import AuthError
from xrunner.servicekit.eventstore import EventStore

JOB_ID = Annotated[str, Parameter(pattern=r"^[0-9a-z]{1,64}$")]


@dataclass
class Edge:
    js: JetStreamContext
    hub: Hub
    auth: Authenticator
    ping_s: float
    max_per_tenant: int
    max_per_subject: int
    open_by_subject: dict[str, int] = field(default_factory=dict)

    @contextlib.contextmanager
    def holding(self, subject: str) -> Iterator[None]:
        """Count one open connection (SSE or attach) against `subject`'s cap."""
        self.open_by_subject[subject] = self.open_by_subject.get(subject, 0) + 1
        try:
            yield
        finally:
            self.open_by_subject[subject] -= 1


def problem(status: int, code: str, title: str, detail: str = "", **headers: str) -> Response[bytes]:
    return problems.respond(problems.problem(status, code, title, detail=detail), headers)


async def admit(edge: Edge, authorization: str | None, ticket: str | None, scope: str,
                open_in_tenant: Callable[[str], int], kind: str) -> Session | Response[bytes]:
    """The caller's session for a new connection (SSE or attach), or its refusal: 401 without valid credentials,
    403 without `scope`, 429 when the tenant (`open_in_tenant` of this `kind`) or the subject is at its cap."""
    try:
        session = await edge.auth.session(authorization, ticket)
    except AuthError as exc:
        return problem(401, "unauthenticated", "Missing or invalid credentials", str(exc))
    who = session.principal
    if not who.can(scope):
        return problem(403, "forbidden", f"This credential lacks the '{scope}' scope")
    if open_in_tenant(who.tenant) >= edge.max_per_tenant or \
            edge.open_by_subject.get(who.subject, 0) >= edge.max_per_subject:
        return problem(429, "too_many_connections", f"Too many open {kind}", "close one and retry",
                       **{"Retry-After": "5"})
    return session


async def _session(edge: Edge, request: Request[Any, Any, State], ticket: str | None) -> Session | Response[bytes]:
    return await admit(edge, request.headers.get("authorization"), ticket, "jobs:read", edge.hub.connections,
                       "streams")


SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


def _sse(edge: Edge, subject: str, stream: AsyncIterator[ServerSentEventMessage]) -> Stream:
    """An SSE response written straight from the messages' bytes (events come framed once, at fan-out): one
    generator between the stream and the server per write, not litestar's SSE wrapper and a counting layer."""

    async def wire() -> AsyncIterator[bytes]:
        with edge.holding(subject):
            async for message in stream:
                yield message.encode()

    return Stream(wire(), media_type="text/event-stream", headers=SSE_HEADERS)


def _resume_from(request: Request[Any, Any, State], query: int | None) -> int | None:
    header = request.headers.get("last-event-id")
    if header and header.isdigit():
        return int(header)
    return query


@get("/v1/events", media_type="text/event-stream")
async def events(
    request: Request[Any, Any, State],
    job: Annotated[list[str] | None, Parameter(description="Only these jobs (repeatable)")] = None,
    type_: Annotated[list[str] | None, QueryParameter(name="type", description="Only these event types")] = None,
    since: Annotated[int | None, Parameter(ge=0, description="Resume after this stream sequence")] = None,
    ticket: Annotated[str | None, Parameter(description="A stream ticket from POST /v1/stream-tickets")] = None,
    position: Annotated[bool, Parameter(description="Open with a `position` event: the sequence it starts after")]
    = False,
) -> Response[Any]:
    """Your tenant's job events, live; `id:` is the stream sequence: reconnect with Last-Event-ID (or `since`)
    to get exactly the events you missed. With `position`, the first message (`event: position`) carries the
    sequence the stream starts after as its id, so a client that loses the connection before any event arrives
    still resumes without a gap."""
    edge: Edge = request.app.state.edge
    session = await _session(edge, request, ticket)
    if isinstance(session, Response):
        return session
    keep = sse.EventFilter(frozenset(job or []), frozenset(type_ or []))
    start = _resume_from(request, since)
    if position and start is None:  # "now" as a sequence: the log is read from it, so nothing falls in between
        start = (await edge.js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
    stream = sse.job_events(edge.js, edge.hub, session.principal.tenant, start, keep, session.expires_at,
                            edge.ping_s, announce=position)
    return _sse(edge, session.principal.subject, stream)


@get("/v1/jobs/{job_id:str}/logs/stream", media_type="text/event-stream")
async def job_log(
    request: Request[Any, Any, State],
    job_id: JOB_ID,
    offset: Annotated[int, Parameter(ge=0)] = 0,
    ticket: Annotated[str | None, Parameter()] = None,
) -> Response[Any]:
    """The job's output from byte `offset`, then live, ending with an `end` event; safe for terminals."""
    edge: Edge = request.app.state.edge
    session = await _session(edge, request, ticket)
    if isinstance(session, Response):
        return session
    if not await EventStore(edge.js).history(session.principal.tenant, job_id):
        return problem(404, "job_not_found", "No such job", job_id)
    start = _resume_from(request, offset) or 0
    stream = sse.job_log(edge.js, session.principal.tenant, job_id, start, session.expires_at, edge.ping_s)
    return _sse(edge, session.principal.subject, stream)
