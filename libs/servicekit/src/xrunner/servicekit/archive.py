"""The log's archive: events older than a retention, kept as gzip-compressed NDJSON segments (the export's line
format) in an object store before JetStream's `max_age` drops them, and read back for the events the stream no
longer holds.

A segment holds the events the log stored in one UTC hour, cut every `SEGMENT_EVENTS` events, under
`<prefix><YYYYMMDDHH>/<first seq>-<last seq>.ndjson.gz`: its name says which sequences and which hour it covers,
so the listing is the index, and every archiver cuts the same segments from the same log (two writers of one
segment write the same object). The archive's progress is its last segment: a pass goes on from there."""

from __future__ import annotations

import asyncio
import gzip
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext

from xrunner.contracts import subjects
from xrunner.servicekit import directget, history, ids
from xrunner.servicekit.blobs import Blobs
from xrunner.servicekit.history import Filter, Record, batches, decode_line, encode_line, encode_record
from xrunner.servicekit.settings import CommonSettings

SEGMENT_EVENTS = 50_000
PREFIX = "archive/events/"
HOUR = timedelta(hours=1)

log = structlog.get_logger()


@dataclass(frozen=True, order=True)
class Segment:
    first: int
    last: int
    hour: datetime  # the UTC hour its events were stored in

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.hour:%Y%m%d%H}/{self.first:015d}-{self.last:015d}.ndjson.gz"

    @classmethod
    def parse(cls, key: str) -> Segment | None:
        """The segment a key names; None for any other object."""
        try:
            hour, name = key.removeprefix(PREFIX).split("/")
            first, last = name.removesuffix(".ndjson.gz").split("-")
            return cls(int(first), int(last), datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=UTC))
        except ValueError:
            return None


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, `>` one or more at the end."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


class Archive:
    """The segments in `blobs`."""

    def __init__(self, blobs: Blobs, segment_events: int = SEGMENT_EVENTS) -> None:
        self.blobs, self.segment_events = blobs, segment_events

    async def segments(self) -> list[Segment]:
        found = [Segment.parse(key) for key in await self.blobs.keys(PREFIX)]
        return sorted(s for s in found if s is not None)

    async def lines(self, segment: Segment) -> Iterator[bytes]:
        """A segment's lines, decompressed (a segment is held in memory whole: at most `SEGMENT_EVENTS`)."""
        data = gzip.decompress(await self.blobs.get(segment.key))
        return iter(data.splitlines())

    async def records(self, filter_subjects: list[str], start_seq: int = 1, before_seq: int | None = None,
                      since: datetime | None = None, until: datetime | None = None) -> AsyncIterator[Record]:
        """Archived events on `filter_subjects` with `start_seq <= seq < before_seq`, stored in [since, until]
        (whole segments are skipped by their names)."""
        for segment in await self.segments():
            if segment.last < start_seq or (since is not None and segment.hour + HOUR <= since):
                continue
            if (before_seq is not None and segment.first >= before_seq) or (until is not None
                                                                            and segment.hour > until):
                return
            for line in await self.lines(segment):
                record = decode_line(line)
                if before_seq is not None and record.seq >= before_seq:
                    return
                if record.seq >= start_seq and _within(record, since, until) and any(
                        matches(p, record.subject) for p in filter_subjects):
                    yield record

    async def archive(self, js: JetStreamContext, cutoff: datetime) -> list[Segment]:
        """Write the segments of every whole hour stored before `cutoff` that the archive does not hold yet."""
        done = await self.segments()
        start = done[-1].last + 1 if done else 1
        first_kept = (await js.stream_info(subjects.EVENTS_STREAM)).state.first_seq
        if first_kept > start and (done or first_kept > 1):
            log.error("events were dropped before they were archived", first_missing=start, first_kept=first_kept)
        written: list[Segment] = []
        cutter = _Cutter(self.segment_events)
        async for msgs in batches(js, [subjects.EVENTS_ALL], start_seq=max(start, first_kept)):
            for msg in msgs:
                stored = msg.metadata.timestamp
                if _hour(stored) + HOUR > cutoff:  # its hour is not whole before the cutoff yet
                    return written + await self._flush(cutter)
                if cutter.full_or_other_hour(stored):
                    written += await self._flush(cutter)
                cutter.add(msg.metadata.sequence.stream, stored, encode_line(msg))
        return written + await self._flush(cutter)  # its hour is whole: no event can be stored in it any more

    async def _flush(self, cutter: _Cutter) -> list[Segment]:
        segment = cutter.segment()
        if segment is None:
            return []
        await self.blobs.put(segment.key, cutter.take())
        log.info("archived events", key=segment.key, events=segment.last - segment.first + 1)
        return [segment]


def _within(record: Record, since: datetime | None, until: datetime | None) -> bool:
    if record.time is None:
        return True
    return (since is None or record.time >= since) and (until is None or record.time <= until)


async def first_kept(js: JetStreamContext) -> int:
    """The oldest sequence the stream still holds (the one after its last when it is empty)."""
    state = (await js.stream_info(subjects.EVENTS_STREAM)).state
    return state.first_seq if state.messages else state.last_seq + 1


async def read_log(js: JetStreamContext, archive: Archive | None, subject: str,
                   start_seq: int = 1) -> AsyncIterator[tuple[int, bytes]]:
    """Events on `subject` from `start_seq` to the log's end as of now: from the archive for what the stream no
    longer holds, then from the stream."""
    kept = await first_kept(js) if archive is not None else 1
    if archive is not None and start_seq < kept:
        async for record in archive.records([subject], start_seq, before_seq=kept):
            yield record.seq, bytes(record.payload)
    async for msgs in batches(js, [subject], start_seq=max(start_seq, kept)):  # no per-message wait: a whole log
        for msg in msgs:
            yield msg.metadata.sequence.stream, msg.data


async def job_history(nc: Client, js: JetStreamContext, archive: Archive | None, tenant: str,
                      job_id: str) -> list[tuple[int, bytes]]:
    """A job's events, the archived ones too. Those are looked for from the hour its id was made in (a job id is a
    ULID), in the segments of what the stream no longer holds: a job older than the stream costs a scan of the
    segments since it was made."""
    subject = subjects.job_history(tenant, job_id)
    kept = await first_kept(js) if archive is not None else 1
    archived: list[tuple[int, bytes]] = []
    created = ids.created_at(job_id)
    if archive is not None and kept > 1 and created is not None:
        archived = [(record.seq, bytes(record.payload))
                    async for record in archive.records([subject], before_seq=kept, since=created - HOUR)]
    return archived + [item async for item in directget.read(nc, subjects.EVENTS_STREAM, subject, kept)]


async def export(js: JetStreamContext, archive: Archive | None, flt: Filter, out: IO[bytes]) -> int:
    """`history.export`, preceded by what the archive holds of the events the stream no longer does."""
    written = 0
    if archive is not None and (kept := await first_kept(js)) > 1:
        async for record in archive.records(flt.subjects(), before_seq=kept, since=flt.since, until=flt.until):
            out.write(encode_record(record))
            written += 1
    return written + await history.export(js, flt, out)


class _Cutter:
    """The segment being written: its lines, compressed as they come."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._reset()

    def _reset(self) -> None:
        self.buffer = io.BytesIO()
        self.gz = gzip.GzipFile(fileobj=self.buffer, mode="wb", compresslevel=6, mtime=0)
        self.first = self.last = self.count = 0
        self.hour: datetime | None = None

    def full_or_other_hour(self, stored: datetime) -> bool:
        return self.count > 0 and (self.count >= self.limit or _hour(stored) != self.hour)

    def add(self, seq: int, stored: datetime, line: bytes) -> None:
        if self.count == 0:
            self.first, self.hour = seq, _hour(stored)
        self.gz.write(line)
        self.last, self.count = seq, self.count + 1

    def segment(self) -> Segment | None:
        return Segment(self.first, self.last, self.hour) if self.count and self.hour else None

    def take(self) -> bytes:
        self.gz.close()
        data = self.buffer.getvalue()
        self._reset()
        return data


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


MARGIN = timedelta(days=1)  # how long the stream keeps an event past the archive's retention, beyond a pass's delay


def check_retention(settings: CommonSettings) -> None:
    """The stream must keep an event until the archiver has written it: past `archive_after_s`, plus the rest of
    its hour, two passes and a day. Raises ValueError otherwise."""
    needed = timedelta(seconds=settings.archive_after_s + 2 * settings.archive_interval_s) + HOUR + MARGIN
    if timedelta(seconds=settings.events_max_age_s) < needed:
        raise ValueError(f"XR_EVENTS_MAX_AGE_S={settings.events_max_age_s:g} drops events before they are "
                         f"archived: make it at least {needed.total_seconds():g} (XR_ARCHIVE_AFTER_S + 2 * "
                         "XR_ARCHIVE_INTERVAL_S + 1 h + 1 day)")


class Archiver:
    """Archives what the log stored longer ago than `archive_after_s`, every `archive_interval_s`."""

    def __init__(self, js: JetStreamContext, archive: Archive, settings: CommonSettings) -> None:
        check_retention(settings)
        self.js, self.archive = js, archive
        self.after = timedelta(seconds=settings.archive_after_s)
        self.interval_s = settings.archive_interval_s

    async def run(self) -> None:
        while True:
            try:
                await self.archive.archive(self.js, datetime.now(UTC) - self.after)
            except Exception as exc:  # the next pass starts again from the last segment written
                log.warning("archiving failed; retrying at the next pass", error=repr(exc))
            await asyncio.sleep(self.interval_s)
