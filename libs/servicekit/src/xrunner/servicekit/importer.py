"""Appends an exported history (NDJSON, see `history`) to a log: each job's events together, in their order, as one
atomic batch (JetStream's atomic batch publish) with compare-and-set on the job's history as every writer does, the
original sequence in `Xr-Original-Seq`; idempotent — an event whose `event_id` the job's history already holds is
skipped, so a re-import appends nothing twice.

A job's history appears in the target all at once, so the target's own services (a live scheduler) never see half of
it: a job's events are held until the file's last line of that job (`history.check` found where it is), then
appended in one batch (parts of `MAX_BATCH` for a longer history). What fails (the target's history of a job moved
under the import, NATS went away) is reported with how many events were appended, and importing again resumes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import IO

from nats.aio.client import Client

from xrunner.contracts import codec, subjects
from xrunner.servicekit.directget import read
from xrunner.servicekit.eventstore import WRONG_LAST_SEQUENCE
from xrunner.servicekit.history import ORIGINAL_SEQ_HEADER, Checked, Record, lines, parse, scope
from xrunner.servicekit.ids import new_id

MAX_BATCH = 1000  # nats-server's limit on an atomic batch
CONCURRENCY = 128  # histories appended at once
READY = 1024  # whole histories collected before they are appended
ACK_WAIT_S = 30.0
DUPLICATE_IN_BATCH = 10201  # the batch repeats a message id the log saw within its dedupe window


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
class _Target:
    """A job's history (or another aggregate's subject) in the target log."""

    last_seq: int = 0
    present: set[str] = field(default_factory=set)  # event ids it holds


Pending = list[tuple[Record, str]]  # (record, event_id), in the file's order


class Importer:
    """Imports one checked file into the log behind `nc`."""

    def __init__(self, nc: Client, checked: Checked) -> None:
        self.nc, self.last_line = nc, checked.last_line
        self.result = Imported()
        self._limit = asyncio.Semaphore(CONCURRENCY)

    async def run(self, src: IO[bytes]) -> Imported:
        held: dict[str, Pending] = {}
        ready: dict[str, Pending] = {}
        previous = 0
        for number, line in lines(src):
            record, event = parse(number, line, previous)
            previous = record.seq
            name = scope(event, record.subject)
            held.setdefault(name, []).append((record, event.event_id))
            if self.last_line[name] == number:  # the job's whole history is in hand
                ready[name] = held.pop(name)
                if len(ready) >= READY:
                    await self._append_all(ready)
                    ready = {}
        await self._append_all(ready)
        return self.result

    async def _append_all(self, ready: dict[str, Pending]) -> None:
        outcomes = await asyncio.gather(*(self._history(name, pending) for name, pending in ready.items()),
                                        return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise ImportFailed(_describe(failures[0]), self.result) from failures[0]

    async def _history(self, name: str, pending: Pending) -> None:
        async with self._limit:
            target = await self._load(name)
            fresh = [(record, event_id) for record, event_id in pending if event_id not in target.present]
            self.result.skipped += len(pending) - len(fresh)
            for start in range(0, len(fresh), MAX_BATCH):
                target.last_seq = await self._batch(name, fresh[start : start + MAX_BATCH], target.last_seq)

    async def _load(self, name: str) -> _Target:
        target = _Target()
        async for seq, data in read(self.nc, subjects.EVENTS_STREAM, name):
            target.last_seq = seq
            target.present.add(codec.decode_event(data).event_id)
        return target

    async def _batch(self, name: str, batch: Pending, expect: int) -> int:
        """Append `batch` atomically if the scope's last event is still at `expect`; returns the new last."""
        batch_id = new_id()
        for number, (record, event_id) in enumerate(batch, start=1):
            headers = {**_kept(record.headers), "Nats-Msg-Id": f"import:{event_id}",
                       ORIGINAL_SEQ_HEADER: str(record.seq), "Nats-Batch-Id": batch_id,
                       "Nats-Batch-Sequence": str(number)}
            if number == 1:
                headers["Nats-Expected-Last-Subject-Sequence"] = str(expect)
                if name != record.subject:  # a job's history: its scope is a wildcard over its events' subjects
                    headers["Nats-Expected-Last-Subject-Sequence-Subject"] = name
            if number < len(batch):
                await self.nc.publish(record.subject, bytes(record.payload), headers=headers)
                continue
            headers["Nats-Batch-Commit"] = "1"
            reply = await self.nc.request(record.subject, bytes(record.payload), headers=headers,
                                          timeout=ACK_WAIT_S)
            return self._acked(json.loads(reply.data), len(batch), expect)
        return expect

    def _acked(self, ack: dict[str, object], count: int, expect: int) -> int:
        error = ack.get("error")
        if isinstance(error, dict):
            if error.get("err_code") == DUPLICATE_IN_BATCH:  # appended by an earlier run within the dedupe window
                self.result.skipped += count
                raise _Reload(expect)
            raise BatchRefused(int(error.get("err_code") or 0), str(error.get("description") or error))
        self.result.appended += count
        seq = ack["seq"]
        assert isinstance(seq, int)
        return seq


class BatchRefused(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code


class _Reload(Exception):
    """The scope moved (our own earlier append): the import must read it again."""

    def __init__(self, expect: int) -> None:
        super().__init__(f"the history moved past {expect}")


def _kept(headers: dict[str, str]) -> dict[str, str]:
    """The original headers but the server's own (`Nats-*`: its dedupe id and compare-and-set are the source's)."""
    return {k: v for k, v in headers.items() if not k.startswith("Nats-")}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BatchRefused) and exc.code == WRONG_LAST_SEQUENCE:
        return "a job's history in the target log changed during the import"
    if isinstance(exc, _Reload):
        return "a retried import overlapped an earlier one still in the dedupe window"
    return f"the import stopped: {exc!r}"


async def import_history(nc: Client, src: IO[bytes], checked: Checked) -> Imported:
    """Append the file `src`, which `history.check` found valid (`checked`); raises ImportFailed when it stops part
    way."""
    return await Importer(nc, checked).run(src)
