"""`WS /v1/jobs/{id}/attach`: a terminal on an interactive job. Its output comes from the job's log stream, what
the client types goes to the job's stdin over core NATS `xr.stdin.<job_id>`.

Framing. Client to server: a binary frame is raw input, written to the job's stdin as is; a text frame is a JSON
control message: `{"type":"input","data":"..."}` (input as text), `{"type":"resize","rows":R,"cols":C}` (a tty
job's terminal size) or `{"type":"eof"}` (ends stdin; a tty is sent ^D). A bad one is answered with
`{"type":"error","detail":...}` and the connection stays. Server to client: binary frames are the job's raw output
(escape sequences and all: the client is the terminal), from the log's current end or from byte `?offset=`; when
the job ends, one text frame `{"type":"end","state":...,"exit_code":...}`, then a normal close (1000). The
connection is closed with 4401 when its credential expires.

A refusal is an HTTP problem+json in the handshake, as elsewhere: 401 bad or expired credential (bearer header or
one-time `?ticket=`), 403 without `jobs:write`, 404 no such job in the caller's tenant, 409 `not_interactive` or
`job_ended`, 429 too many connections, 503 when the attach cannot be audited (`job.attached` is appended first).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, cast

import msgspec
import structlog
from litestar import Response, WebSocket, websocket
from litestar.datastructures import State
from litestar.exceptions import WebSocketDisconnect
from litestar.params import Parameter
from litestar.types import WebSocketReceiveEvent, WebSocketResponseBodyEvent, WebSocketResponseStartEvent
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from xrunner.contracts import codec, lifecycle, subjects
from xrunner.contracts.api import JobView, Problem
from xrunner.contracts.events import JobAttached
from xrunner.contracts.messages import LogChunk
from xrunner.contracts.spec import is_interactive
from xrunner.realtime import sse
from xrunner.realtime.hub import CLIENTS
from xrunner.realtime.routes import JOB_ID, Edge, admit, problem
from xrunner.realtime.tickets import Session
from xrunner.servicekit import tracing
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.problems import PROBLEM_JSON

log = structlog.get_logger()

ATTACHED = CLIENTS.labels(stream="attach")
EXPIRED = 4401  # 4000 + the HTTP status it stands for, as for refusals a server cannot answer in the handshake
INPUT_CHUNK = 64 * 1024  # bytes per stdin message, well under NATS' payload limit
STDIN_TIMEOUT_S = 5.0
OUTCOME_WAIT_S = 10.0  # the log's end comes just before the worker appends the job's outcome
Dims = Annotated[int, msgspec.Meta(ge=1, le=9999)]


class Input(msgspec.Struct, tag="input", tag_field="type", forbid_unknown_fields=True):
    data: str


class Resize(msgspec.Struct, tag="resize", tag_field="type", forbid_unknown_fields=True):
    rows: Dims
    cols: Dims


class Eof(msgspec.Struct, tag="eof", tag_field="type", forbid_unknown_fields=True):
    pass


class End(msgspec.Struct, tag="end", tag_field="type"):
    state: str
    exit_code: int | None


class Error(msgspec.Struct, tag="error", tag_field="type"):
    detail: str


_controls = msgspec.json.Decoder(Input | Resize | Eof)
_frames = msgspec.json.Encoder()


@dataclass
class Terminals:
    """What attach needs beside the SSE edge: core NATS for stdin, and its own count of open terminals."""

    nc: Client
    open_by_tenant: dict[str, int] = field(default_factory=dict)

    @contextlib.contextmanager
    def counted(self, edge: Edge, tenant: str, subject: str) -> Iterator[None]:
        """Count a connection against the tenant's attach cap and the subject's cap it shares with SSE."""
        self.open_by_tenant[tenant] = self.open_by_tenant.get(tenant, 0) + 1
        ATTACHED.inc()
        try:
            with edge.holding(subject):
                yield
        finally:
            ATTACHED.dec()
            self.open_by_tenant[tenant] -= 1


@websocket("/v1/jobs/{job_id:str}/attach")
async def attach(
    socket: WebSocket[Any, Any, State],
    job_id: JOB_ID,
    offset: Annotated[int | None, Parameter(ge=0)] = None,
    ticket: Annotated[str | None, Parameter()] = None,
) -> None:
    """Attach a terminal to an interactive job (see the module's docstring for the framing)."""
    edge: Edge = socket.app.state.edge
    terminals: Terminals = socket.app.state.terminals
    admitted = await _admit(edge, terminals, socket, job_id, ticket)
    if isinstance(admitted, Response):
        await _refuse(socket, admitted)
        return
    session, view = admitted
    who = session.principal
    if offset is None:  # "now" in the log, read before any input is relayed: the job's reply to it comes after
        offset = await _log_end(edge.js, who.tenant, job_id, view.attempt) if _live(view) else 0
    await socket.accept()
    with terminals.counted(edge, who.tenant, who.subject):
        log.info("attached", job_id=job_id, tenant=who.tenant, subject=who.subject)
        output = asyncio.create_task(_output(socket, edge, terminals.nc, session, view, offset))
        typing = asyncio.create_task(_input(socket, terminals.nc, job_id))
        _, pending = await asyncio.wait({output, typing}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        failed = [r for r in await asyncio.gather(output, typing, return_exceptions=True)
                  if isinstance(r, Exception) and not isinstance(r, WebSocketDisconnect | OSError)]
        if failed:  # not a client that left: tell the client the server failed
            log.error("attach failed", job_id=job_id, error=repr(failed[0]))
            with contextlib.suppress(Exception):
                await socket.close(1011, "internal error")


async def _admit(edge: Edge, terminals: Terminals, socket: WebSocket[Any, Any, State], job_id: str,
                 ticket: str | None) -> tuple[Session, JobView] | Response[bytes]:
    """Who is attaching, to which job (or a refusal as a problem response), audited before anything is relayed."""
    session = await admit(edge, socket.headers.get("authorization"), ticket, "jobs:write",
                          lambda tenant: terminals.open_by_tenant.get(tenant, 0), "connections")
    if isinstance(session, Response):
        return session
    who = session.principal
    view = lifecycle.replay(await EventStore(edge.js).history(who.tenant, job_id))
    if view is None:
        return problem(404, "job_not_found", "No such job", job_id)
    if not is_interactive(view.spec.workload):
        return problem(409, "not_interactive", "This job is not interactive", "submit it with interactive or tty")
    if lifecycle.is_terminal(view.state):
        return problem(409, "job_ended", "This job has ended", view.state)
    return await _audit(edge.js, session, view)


async def _audit(js: JetStreamContext, session: Session, view: JobView) -> tuple[Session, JobView] | Response[bytes]:
    """Append `job.attached` naming who attaches: an attach that cannot be audited does not happen."""
    who = session.principal
    attached = JobAttached(event_id=new_id(), occurred_at=datetime.now(UTC), tenant=who.tenant, job_id=view.id,
                           attempt=view.attempt, subject=who.subject)
    try:
        await EventStore(js).append(attached, msg_id=f"{view.id}:attached:{attached.event_id}")
    except Exception as exc:
        log.warning("cannot audit an attach", job_id=view.id, error=repr(exc))
        return problem(503, "audit_unavailable", "The attach could not be recorded", "retry", **{"Retry-After": "1"})
    return session, view


async def _refuse(socket: WebSocket[Any, Any, State], response: Response[bytes]) -> None:
    """Answer the handshake with the problem (ASGI's WebSocket denial response); a server without that extension
    can only close, with 4000 + the status and the problem's code as the reason."""
    body, status = response.content, response.status_code or 500
    if "websocket.http.response" not in (socket.scope.get("extensions") or {}):
        await socket.close(4000 + status, msgspec.json.decode(body, type=Problem).code)
        return
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in response.headers.items()]
    await socket.send(WebSocketResponseStartEvent(type="websocket.http.response.start", status=status,
                                                  headers=headers))
    await socket.send(WebSocketResponseBodyEvent(type="websocket.http.response.body", body=body, more_body=False))


async def _output(socket: WebSocket[Any, Any, State], edge: Edge, nc: Client, session: Session, view: JobView,
                  offset: int) -> None:
    """The job's output from `offset` as binary frames once it runs, then the `end` frame and a normal close."""
    tenant, job_id, attempt = session.principal.tenant, view.id, view.attempt
    view = await _when(edge.js, nc, tenant, job_id, _live_or_ended, session.expires_at - time.time()) or view
    if _live_or_ended(view):
        start = offset if view.attempt == attempt else 0  # the attempt that runs now is not the one `offset` is of
        async for piece in sse.log_pieces(edge.js, tenant, job_id, start, session.expires_at, edge.ping_s):
            if piece.kind == "output":
                await socket.send_bytes(piece.data)
            elif piece.kind == "end":
                break
    if time.time() >= session.expires_at:
        await socket.close(EXPIRED, "your credential expired; attach again with a new one")
        return
    final = await _when(edge.js, nc, tenant, job_id, lambda v: lifecycle.is_terminal(v.state), OUTCOME_WAIT_S)
    final = final or view
    await socket.send_text(_frames.encode(End(state=final.state, exit_code=final.exit_code)).decode())
    await socket.close(1000, "the job ended")


def _live(view: JobView) -> bool:
    return view.state in ("dispatched", "running")


def _live_or_ended(view: JobView) -> bool:
    """Whether the job has an attempt whose log can be read (a queued job's next attempt has none yet)."""
    return _live(view) or lifecycle.is_terminal(view.state)


async def _when(js: JetStreamContext, nc: Client, tenant: str, job_id: str, ready: Callable[[JobView], bool],
                timeout: float) -> JobView | None:
    """The job's view once `ready` holds (re-read at each of its new events), or as it is after `timeout`."""
    changed = asyncio.Event()

    async def on_event(_: Any) -> None:
        changed.set()

    sub = await nc.subscribe(subjects.job_events(tenant, job_id), cb=on_event)
    deadline = time.monotonic() + timeout
    try:
        while True:
            changed.clear()
            view = lifecycle.replay(await EventStore(js).history(tenant, job_id))
            left = deadline - time.monotonic()
            if view is None or ready(view) or left <= 0:
                return view
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(left, 5.0))
    finally:
        await sub.unsubscribe()


async def _log_end(js: JetStreamContext, tenant: str, job_id: str, attempt: int) -> int:
    """The byte offset where the attempt's log ends now: attach shows what comes next, as a terminal does."""
    try:
        last = await js.get_last_msg(subjects.LOGS_STREAM, subjects.job_logs(tenant, job_id))
    except NotFoundError:
        return 0
    chunk = codec.decode(last.data or b"", LogChunk)
    return chunk.offset + len(chunk.data) if chunk.attempt == attempt else 0


async def _input(socket: WebSocket[Any, Any, State], nc: Client, job_id: str) -> None:
    """Relay what the client sends, in order, until it disconnects."""
    while True:
        event = await socket.receive()
        if event["type"] == "websocket.disconnect":
            return
        frame = cast(WebSocketReceiveEvent, event)
        raw = frame.get("bytes")
        if raw is None:
            try:
                control = _controls.decode(frame.get("text") or "")
            except (msgspec.DecodeError, RecursionError) as exc:  # an unknown field's value is skipped recursively
                await socket.send_text(_frames.encode(Error(detail=f"bad control message: {exc}")).decode())
                continue
            if isinstance(control, Resize):
                await _stdin(nc, job_id, b"", {subjects.STDIN_RESIZE_HEADER: f"{control.rows}x{control.cols}"})
                continue
            if isinstance(control, Eof):
                await _stdin(nc, job_id, b"", {subjects.STDIN_EOF_HEADER: "1"})
                continue
            raw = control.data.encode()
        for at in range(0, len(raw), INPUT_CHUNK):
            await _stdin(nc, job_id, raw[at:at + INPUT_CHUNK])


async def _stdin(nc: Client, job_id: str, data: bytes, headers: dict[str, str] | None = None) -> None:
    """Deliver one stdin message as a request: until the job's worker listens (the job is starting) there is no
    responder, and the message is retried instead of lost; a worker that does not answer in time loses it."""
    delay = 0.02
    while True:
        try:
            await nc.request(subjects.job_stdin(job_id), data, timeout=STDIN_TIMEOUT_S,
                             headers=tracing.headers(headers))
            return
        except NoRespondersError:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        except NatsTimeout:
            log.warning("stdin input lost: the job's worker did not answer", job_id=job_id)
            return
