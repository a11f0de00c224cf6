"""Parks what a projection cannot apply: which failures are the event's own (permanent) rather than the
infrastructure's (transient), and the dead-letter message in `XR_DEAD` that carries the event as stored, its
sequence and subject in the log, and the error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
import msgspec
import structlog
from nats.js import JetStreamContext

from xrunner.contracts import subjects
from xrunner.servicekit.consumer import DEAD_LETTERS

log = structlog.get_logger()

# SQLSTATE classes that describe the data, not the server: data exception (a NUL or an untranslatable character,
# a value out of range), integrity constraint violation, program limit exceeded (an index row too large).
PERMANENT_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})
# What a fold raises for an event it cannot make sense of; asyncpg's client-side DataError is a ValueError too.
PERMANENT_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError,
                    msgspec.MsgspecError)

PROJECTION_HEADER = "Xr-Dead-Projection"
SEQ_HEADER = "Xr-Dead-Seq"
SUBJECT_HEADER = "Xr-Dead-Subject"
ERROR_HEADER = "Xr-Dead-Error"
MAX_ERROR_CHARS = 400


def permanent(exc: BaseException) -> bool:
    """Whether `exc` will recur however often the same event is applied again (connections lost, too many
    connections, serialization failures, timeouts and OS errors are transient: the projector retries those)."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "")[:2] in PERMANENT_SQLSTATE_CLASSES
    return isinstance(exc, PERMANENT_ERRORS)


def printable(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` on one line of printable ASCII (control characters such as NUL or escapes become spaces, anything
    else non-ASCII is backslash-escaped), at most `limit` characters: storable in any text column, a NATS header
    and an event."""
    line = "".join(ch if ch.isprintable() else " " for ch in text)
    return line.encode("ascii", "backslashreplace").decode("ascii")[:limit]


def describe(exc: BaseException) -> str:
    return printable(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Which projection could not apply the event at `seq` on `subject` in the log, and why."""

    projection: str
    seq: int
    subject: str
    error: str

    def headers(self) -> dict[str, str]:
        return {PROJECTION_HEADER: self.projection, SEQ_HEADER: str(self.seq), SUBJECT_HEADER: self.subject,
                ERROR_HEADER: self.error}

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> DeadLetter:
        """KeyError or ValueError when a header is missing or malformed."""
        return cls(headers[PROJECTION_HEADER], int(headers[SEQ_HEADER]), headers[SUBJECT_HEADER],
                   headers[ERROR_HEADER])


def _job_of(subject: str) -> tuple[str, str]:
    try:
        tenant, job_id, _ = subjects.parse_job_event(subject)
    except ValueError:
        return "_", "_"
    return tenant, job_id


async def park(js: JetStreamContext, projection: str, seq: int, subject: str, data: bytes,
               exc: BaseException) -> DeadLetter:
    """Publish the event at `seq` to `xr.dead.<projection>.<tenant>.<job>` (once per projection and sequence: a
    batch folded again parks it again as a duplicate) and count it."""
    letter = DeadLetter(projection, seq, subject, describe(exc))
    tenant, job_id = _job_of(subject)
    ack = await js.publish(subjects.dead_letters(projection, tenant, job_id), data, stream=subjects.DEAD_STREAM,
                           headers={**letter.headers(), "Nats-Msg-Id": f"dead:{projection}:{seq}"})
    if not ack.duplicate:
        DEAD_LETTERS.labels(projection).inc()
        log.error("event parked in the dead-letter stream", projection=projection, seq=seq, subject=subject,
                  error=letter.error)
    return letter
