"""Appends an exported history (NDJSON, see `history`) to a log: each job's events in their order, compare-and-set
on the job's history as every writer does, the original sequence in `Xr-Original-Seq`, and idempotent — an event
whose `event_id` the job's history already holds is skipped, so a re-import appends nothing twice.

The caller validates the whole file first (`history.check`); what fails after that (the target's log moved under
the import, NATS went away) is reported with how many events were appended, and importing again resumes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import IO

from nats.js import JetStreamContext
from nats.js.errors import APIError

from xrunner.contracts import codec, subjects
from xrunner.servicekit.eventstore import WRONG_LAST_SEQUENCE, read_raw
from xrunner.servicekit.history import ORIGINAL_SEQ_HEADER, Record, lines, parse, scope

CHUNK = 4096  # lines read ahead: each scope's events in a chunk are appended in order, scopes concurrently
CONCURRENCY = 128  # scopes appended at once
CHUNK_DEADLINE_S = 120.0


@dataclass
class Imported:
    appended: int = 0
    skipped: int = 0  # already in the target's log


class ImportFailed(Exception):
    """The import stopped part way; `imported` says what was appended before it did."""

    def __init__(self, reason: str, imported: Imported) -> None:
        super().__init__(f"{reason} (appended {imported.appended} events, skipped {imported.skipped} already "
                         "present; importing the same file again appends the rest)")
        self.imported = imported


@dataclass
class _Scope:
    """A job's history (or another aggregate's subject) in the target log."""

    last_seq: int = 0
    present: set[str] = field(default_factory=set)  # event ids it held before the import


Pending = list[tuple[Record, str]]  # (record, event_id)


class Importer:
    """Imports one file into the log behind `js`."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self.scopes: dict[str, _Scope] = {}
        self.result = Imported()
        self._limit = asyncio.Semaphore(CONCURRENCY)

    async def run(self, src: IO[bytes]) -> Imported:
        chunk: dict[str, Pending] = {}
        count, previous = 0, 0
        for number, line in lines(src):
            record, event = parse(number, line, previous)
            previous = record.seq
            chunk.setdefault(scope(event, record.subject), []).append((record, event.event_id))
            count += 1
            if count >= CHUNK:
                await self._chunk(chunk)
                chunk, count = {}, 0
        await self._chunk(chunk)
        return self.result

    async def _chunk(self, chunk: dict[str, Pending]) -> None:
        appends = asyncio.gather(*(self._scope(name, pending) for name, pending in chunk.items()),
                                 return_exceptions=True)
        try:
            outcomes = await asyncio.wait_for(appends, CHUNK_DEADLINE_S)
        except TimeoutError as exc:
            raise ImportFailed(f"the log did not acknowledge appends within {CHUNK_DEADLINE_S:g} s", self.result) \
                from exc
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise ImportFailed(_describe(failures[0]), self.result) from failures[0]

    async def _scope(self, name: str, pending: Pending) -> None:
        async with self._limit:
            target = self.scopes.get(name) or await self._load(name)
            for record, event_id in pending:
                if event_id in target.present:
                    self.result.skipped += 1
                    continue
                target.last_seq = await self._append(name, record, event_id, target.last_seq)

    async def _load(self, name: str) -> _Scope:
        target = _Scope()
        async for seq, data in read_raw(self.js, subjects.EVENTS_STREAM, name):
            target.last_seq = seq
            target.present.add(codec.decode_event(data).event_id)
        self.scopes[name] = target
        return target

    async def _append(self, name: str, record: Record, event_id: str, expect: int) -> int:
        headers = {**_kept(record.headers), "Nats-Msg-Id": f"import:{event_id}",
                   ORIGINAL_SEQ_HEADER: str(record.seq), "Nats-Expected-Last-Subject-Sequence": str(expect)}
        if name != record.subject:  # a job's history: the scope is a wildcard over its events' subjects
            headers["Nats-Expected-Last-Subject-Sequence-Subject"] = name
        # publish_async: the ack arrives on one shared reply subscription (no inbox and timer per append, half
        # the CPU of `publish`); a lost ack is bounded by the chunk's deadline
        ack = await (await self.js.publish_async(record.subject, bytes(record.payload),
                                                 stream=subjects.EVENTS_STREAM, headers=headers))
        if ack.duplicate:  # appended by an earlier run of this import within the dedupe window
            self.result.skipped += 1
        else:
            self.result.appended += 1
        return ack.seq


def _kept(headers: dict[str, str]) -> dict[str, str]:
    """The original headers but the server's own (`Nats-*`: its dedupe id and compare-and-set are the source's)."""
    return {k: v for k, v in headers.items() if not k.startswith("Nats-")}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, APIError) and exc.err_code == WRONG_LAST_SEQUENCE:
        return "a job's history in the target log changed during the import"
    return f"the import stopped: {exc!r}"


async def import_history(js: JetStreamContext, src: IO[bytes]) -> Imported:
    """Append the (already checked) file `src` to the log; raises ImportFailed when it stops part way."""
    return await Importer(js).run(src)
