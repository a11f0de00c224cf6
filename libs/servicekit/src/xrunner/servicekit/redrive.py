"""Dead letters an operator can act on: what `XR_DEAD` holds (list, show) and the re-drive of a letter into the
projection that parked it, once its cause is fixed (the projection's code fixed and deployed).

A re-drive re-folds the letter's job in that projection from the job's whole history in the log, up to the
projection's committed position, in log order: it first drops the job's rows (`Refoldable.forget`), then applies the
history as one batch, and marks the letter re-driven, all in one transaction. The job's rows become what the
projection would hold had the event been applied the first time, which is what a rebuild with the deployed code
gives. It is idempotent: a letter already re-driven is reported and nothing is written (and folding the same
history again would give the same rows). If the event still cannot be applied, nothing is written and the error is
reported. The log is never changed: a fix belongs in the projection's code (or in a new event by the event's
writer), since an edited payload would make the projection differ from every rebuild.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from typing import Any, Literal, Protocol, runtime_checkable

import asyncpg
import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from xrunner.contracts import codec, subjects
from xrunner.contracts.events import Event
from xrunner.servicekit.deadletter import DeadLetter, describe, permanent
from xrunner.servicekit.eventstore import read_raw
from xrunner.servicekit.projector import Projection, advance, position
from xrunner.servicekit.replay import WithSchema
from xrunner.servicekit.runtime import Command, Runtime


@dataclass(frozen=True, slots=True)
class Parked:
    """One message of `XR_DEAD`: its sequence there, the letter (where the event is in the log, who parked it and
    why), the event as stored, and when it was parked."""

    dead_seq: int
    letter: DeadLetter
    data: bytes
    parked_at: datetime | None


async def letters(js: JetStreamContext, projection: str | None = None, limit: int = 1000) -> list[Parked]:
    """The dead letters, oldest first (those of `projection` only, when given), at most `limit`."""
    out: list[Parked] = []
    seq = 1
    while len(out) < limit:
        try:
            msg = await js.get_msg(subjects.DEAD_STREAM, seq=seq, subject=subjects.DEAD_ALL, next=True)
        except NotFoundError:
            break
        assert msg.seq is not None
        seq = msg.seq + 1
        found = _parked(msg.seq, msg.headers or {}, msg.data or b"", msg.time)
        if found is not None and projection in (None, found.letter.projection):
            out.append(found)
    return out


async def letter(js: JetStreamContext, dead_seq: int) -> Parked | None:
    try:
        msg = await js.get_msg(subjects.DEAD_STREAM, seq=dead_seq)
    except NotFoundError:
        return None
    return _parked(dead_seq, msg.headers or {}, msg.data or b"", msg.time)


def _parked(seq: int, headers: dict[str, str], data: bytes, at: datetime | None) -> Parked | None:
    try:
        return Parked(seq, DeadLetter.from_headers(headers), data, at)
    except (KeyError, ValueError):
        return None  # not one of ours


def marker(projection: str, dead_seq: int) -> str:
    """The position-table row that records a re-driven letter."""
    return f"redriven:{projection}:{dead_seq}"


@runtime_checkable
class Refoldable(Projection, Protocol):
    """A projection that can drop one job's rows, so that the job can be folded again from its history."""

    async def forget(self, conn: asyncpg.Connection, tenant: str, job_id: str) -> None: ...


class CannotRedrive(Exception):
    """The letter is not there, is another projection's, is no job's, or its event still cannot be applied."""


@dataclass(frozen=True, slots=True)
class Redriven:
    outcome: Literal["applied", "already"]
    events: int  # folded into the job's rows


async def redrive(js: JetStreamContext, conn: asyncpg.Connection, projection: Projection,
                  dead_seq: int) -> Redriven:
    """Re-fold the job of dead letter `dead_seq` in `projection` (see the module's docstring)."""
    parked = await letter(js, dead_seq)
    if parked is None:
        raise CannotRedrive(f"no dead letter at {dead_seq}")
    if parked.letter.projection != projection.name:
        raise CannotRedrive(f"dead letter {dead_seq} was parked by {parked.letter.projection}, not {projection.name}")
    if not isinstance(projection, Refoldable):
        raise CannotRedrive(f"{projection.name} cannot re-fold one job; rebuild it (`xrunner projections rebuild`)")
    try:
        tenant, job_id, _ = subjects.parse_job_event(parked.letter.subject)
    except ValueError as exc:
        raise CannotRedrive(f"dead letter {dead_seq} is no job's event ({parked.letter.subject})") from exc
    async with conn.transaction():
        if await position(conn, marker(projection.name, dead_seq), lock=True):
            return Redriven("already", 0)
        upto = await position(conn, projection.name)
        history = await _history(js, tenant, job_id, upto)
        await _refold(conn, projection, tenant, job_id, history)
        await advance(conn, marker(projection.name, dead_seq), parked.letter.seq)
    return Redriven("applied", len(history))


async def _history(js: JetStreamContext, tenant: str, job_id: str, upto: int) -> list[tuple[int, Event]]:
    history = []
    async for seq, data in read_raw(js, subjects.EVENTS_STREAM, subjects.job_history(tenant, job_id)):
        if seq > upto:
            break
        try:
            history.append((seq, codec.decode_event(data)))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise CannotRedrive(f"the event at {seq} still cannot be decoded: {describe(exc)}") from exc
    return history


async def _refold(conn: asyncpg.Connection, projection: Refoldable, tenant: str, job_id: str,
                  history: Sequence[tuple[int, Event]]) -> None:
    try:
        async with conn.transaction():
            await projection.forget(conn, tenant, job_id)
            if history:
                await projection.apply(conn, history)
    except Exception as exc:
        if permanent(exc):
            raise CannotRedrive(f"the job's events still cannot be applied: {describe(exc)}") from exc
        raise


def redrive_command(package: str, projection: Callable[[Any], Projection]) -> Command:
    """The `redrive DEAD_SEQ` command of the service in `package` (its migrations in `<package>/sql`): re-drive that
    dead letter into `projection(settings)`; exit 0 when applied or already re-driven, 1 when it cannot be."""

    async def command(runtime: Runtime) -> int:
        settings = runtime.settings
        assert isinstance(settings, WithSchema), f"{runtime.service} keeps no projection"
        if len(runtime.args) != 1 or not runtime.args[0].isdigit():
            print(f"usage: python -m {package} redrive DEAD_SEQ")
            return 2
        js = await runtime.connect_nats()
        pool = await runtime.connect_postgres(settings.schema, files(package) / "sql")
        try:
            async with pool.acquire() as conn:
                done = await redrive(js, conn, projection(settings), int(runtime.args[0]))
        except CannotRedrive as exc:
            print(f"not re-driven: {exc}")
            return 1
        print(f"dead letter {runtime.args[0]} re-driven: {done.events} events of its job folded again"
              if done.outcome == "applied" else f"dead letter {runtime.args[0]} was re-driven before; nothing done")
        return 0

    return command
