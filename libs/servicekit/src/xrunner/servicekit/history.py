"""The log as NDJSON, one event per line (`{"seq", "subject", "headers", "payload"}`): a filtered, streaming export
of `XR_EVENTS`, and the validation of such a file.

A line's `payload` is the event's JSON as the log holds it (embedded, not re-encoded), so an export is a copy of
the log's bytes; `seq` is the event's sequence in the stream it was exported from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from xrunner.contracts import codec, subjects
from xrunner.contracts.events import Event, JobEvent
from xrunner.servicekit.pull import pull

ORIGINAL_SEQ_HEADER = "Xr-Original-Seq"  # on an imported event: its sequence in the log it was exported from


class Record(msgspec.Struct, frozen=True, omit_defaults=True):
    """One line of an export."""

    seq: int
    subject: str
    payload: msgspec.Raw
    headers: dict[str, str] = {}
    time: datetime | None = None  # when the log stored it (its clock, not the event's `occurred_at`)


_line_encoder = msgspec.json.Encoder()
_line_decoder = msgspec.json.Decoder(Record)


def encode_line(msg: Msg) -> bytes:
    """A message of the log as a line."""
    record = Record(msg.metadata.sequence.stream, msg.subject, msgspec.Raw(msg.data), msg.headers or {},
                    msg.metadata.timestamp)
    return _line_encoder.encode(record) + b"\n"


def encode_record(record: Record) -> bytes:
    return _line_encoder.encode(record) + b"\n"


def decode_line(line: bytes) -> Record:
    return _line_decoder.decode(line)


class BadLine(ValueError):
    """A line of an NDJSON history that cannot be imported; `line` counts from 1."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line, self.reason = line, reason


@dataclass(frozen=True)
class Filter:
    """Which events an export takes: one job's, one tenant's, some event types (subject tokens such as `started`,
    or tags such as `job.started.v1`), stored in [since, until] by the log's clock. Empty: everything."""

    job: str | None = None
    tenant: str | None = None
    types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def subjects(self) -> list[str]:
        """Subject filters that do not overlap (a consumer refuses overlapping ones)."""
        tenant, job = self.tenant or "*", self.job or "*"
        tokens = sorted({_token(t) for t in self.types})
        if not tokens:
            if self.job is None and self.tenant is None:
                return [subjects.EVENTS_ALL]
            wanted = [f"xr.evt.job.{tenant}.{job}.*"]
            return wanted + ([subjects.tenant_events(tenant)] if self.job is None else [])
        wanted = [subjects.job_events(tenant, job, token) for token in tokens]
        if self.job is None:
            wanted += [subjects.tenant_events(tenant, token) for token in tokens]
            wanted += [subjects.worker_events("*", token) for token in tokens if self.tenant is None]
        return wanted


def _token(kind: str) -> str:
    """`job.started.v1` → `started`, `artifact.stored.v1` → `artifact_stored`; a token stays as it is."""
    parts = kind.split(".")
    if len(parts) == 3:
        return parts[1] if parts[0] in ("job", "tenant", "worker") else f"{parts[0]}_{parts[1]}"
    return kind


async def export(js: JetStreamContext, flt: Filter, out: IO[bytes], batch: int = 1024) -> int:
    """Write the events `flt` takes, oldest first, one line each, up to the end of the log as of the call's start
    (at most `batch` in memory); returns how many."""
    written = 0
    async for msgs in batches(js, flt.subjects(), since=flt.since, batch=batch):
        if flt.until is not None and msgs[-1].metadata.timestamp > flt.until:
            out.write(b"".join(encode_line(m) for m in msgs if m.metadata.timestamp <= flt.until))
            return written + sum(m.metadata.timestamp <= flt.until for m in msgs)
        out.write(b"".join(encode_line(m) for m in msgs))
        written += len(msgs)
    return written


async def batches(
    js: JetStreamContext, filter_subjects: list[str], *, start_seq: int = 1, since: datetime | None = None,
    batch: int = 1024,
) -> AsyncIterator[list[Msg]]:
    """The log's messages on `filter_subjects` from `start_seq` (or stored since `since`) up to its end as of the
    call, in batches, through an ephemeral consumer without acks."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME if since else DeliverPolicy.BY_START_SEQUENCE,
        opt_start_time=since,
        opt_start_seq=None if since else max(start_seq, 1),
        ack_policy=AckPolicy.NONE,
        filter_subjects=filter_subjects,
        inactive_threshold=30.0,
        mem_storage=True,
        num_replicas=1,
    )
    info = await js.add_consumer(subjects.EVENTS_STREAM, config)
    assert info.name is not None
    sub = await js.pull_subscribe_bind(info.name, stream=subjects.EVENTS_STREAM)
    try:
        pending = info.num_pending or 0
        while pending > 0:
            msgs = await pull(sub, min(batch, pending), 5.0)
            if not msgs:
                return
            pending = msgs[-1].metadata.num_pending or 0
            yield msgs
    finally:
        await sub.unsubscribe()
        await js.delete_consumer(subjects.EVENTS_STREAM, info.name)


@dataclass
class Checked:
    """What a valid file holds: how many events, and the line of each history's last event."""

    events: int = 0
    last_line: dict[str, int] = field(default_factory=dict)

    @property
    def scopes(self) -> set[str]:
        return set(self.last_line)


def scope(event: Event, subject: str) -> str:
    """The compare-and-set scope of an event: its job's history, or its own subject for other aggregates."""
    return subjects.job_history(event.tenant, event.job_id) if isinstance(event, JobEvent) else subject


def parse(number: int, line: bytes, previous_seq: int) -> tuple[Record, Event]:
    """One line, checked: a record, whose payload is a known event, appended on the subject that event belongs to,
    with a sequence after the previous line's. Raises BadLine."""
    try:
        record = decode_line(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadLine(number, f"not an exported event: {exc}") from None
    try:
        event = codec.decode_event(bytes(record.payload))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadLine(number, f"payload is not a known event: {exc}") from None
    try:
        expected = subjects.event_subject(event)
    except TypeError as exc:
        raise BadLine(number, str(exc)) from None
    if record.subject != expected:
        raise BadLine(number, f"subject {record.subject!r} does not match its event (expected {expected!r})")
    if record.seq <= previous_seq:
        raise BadLine(number, f"seq {record.seq} is not after the previous line's {previous_seq}")
    return record, event


def lines(src: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """The file's non-blank lines, numbered from 1."""
    for number, line in enumerate(src, start=1):
        if line.strip():
            yield number, line


def check(src: IO[bytes]) -> Checked:
    """Validate a whole file without keeping it in memory (only where each history it touches ends); raises
    BadLine."""
    checked, previous = Checked(), 0
    for number, line in lines(src):
        record, event = parse(number, line, previous)
        previous = record.seq
        checked.events += 1
        checked.last_line[scope(event, record.subject)] = number
    return checked
