"""A job as of any event (`GET /v1/jobs/{id}?as_of=SEQ|TIME`): the same pure fold the read model uses
(`lifecycle.fold`), over the job's history up to that point."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime

from nats.aio.client import Client
from nats.js import JetStreamContext

from xrunner.contracts import codec, lifecycle, subjects
from xrunner.contracts.api import JobView
from xrunner.contracts.events import Event
from xrunner.gateway.readmodel import artifact_counts
from xrunner.servicekit import archive as archive_reader
from xrunner.servicekit import directget
from xrunner.servicekit.archive import Archive
from xrunner.servicekit.problems import ProblemError

Point = int | datetime  # a stream sequence, or a time by the events' own clock (`occurred_at`)


def parse_point(raw: str) -> Point:
    """`as_of`: a positive integer (a sequence of the log) or an RFC 3339 date-time with its zone."""
    text = raw.strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ProblemError(400, "invalid_request", "as_of is a sequence (a positive integer) or an RFC 3339 "
                           "date-time with a zone", field="as_of", detail=raw[:64])
    return moment


def prefix(history: Sequence[tuple[int, Event]], point: Point) -> list[tuple[int, Event]]:
    """The events up to `point`: through sequence `point`, or up to (not past) the first event that occurred after
    time `point` — a prefix even when writers' clocks disagree."""
    if isinstance(point, int):
        return [item for item in history if item[0] <= point]
    taken: list[tuple[int, Event]] = []
    for item in history:
        if item[1].occurred_at > point:
            break
        taken.append(item)
    return taken


def view_as_of(history: Sequence[tuple[int, Event]], point: Point) -> JobView | None:
    """The job as the fold left it at `point`; None when it did not exist yet."""
    events = prefix(history, point)
    view = lifecycle.replay(events)
    if view is not None:
        view.artifacts = sum(artifact_counts(events).values())
    return view


class Histories:
    """Job histories recently read for `as_of`, decoded and kept (up to `max_events` in all, least recently used
    first out): a timeline asks for one job at many points, and each request then reads only what the log appended
    to the job since. The first read of a job takes its archived events too (see `archive.job_history`)."""

    def __init__(self, nc: Client, js: JetStreamContext, archive: Archive | None, max_events: int = 200_000) -> None:
        self.nc, self.js, self.archive, self.max_events = nc, js, archive, max_events
        self._cache: OrderedDict[tuple[str, str], list[tuple[int, Event]]] = OrderedDict()
        self._events = 0

    async def get(self, tenant: str, job_id: str) -> list[tuple[int, Event]]:
        key = (tenant, job_id)
        known = self._cache.pop(key, None)
        if known is None:
            raw = await archive_reader.job_history(self.nc, self.js, self.archive, tenant, job_id)
            known = [(seq, codec.decode_event(data)) for seq, data in raw]
        else:
            self._events -= len(known)
            after = known[-1][0] + 1
            known += [(seq, codec.decode_event(data)) async for seq, data in
                      directget.read(self.nc, subjects.EVENTS_STREAM, subjects.job_history(tenant, job_id), after)]
        if known:
            self._keep(key, known)
        return known

    def _keep(self, key: tuple[str, str], history: list[tuple[int, Event]]) -> None:
        self._cache[key] = history
        self._events += len(history)
        while self._events > self.max_events and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._events -= len(dropped)


async def job_as_of(histories: Histories, tenant: str, job_id: str, point: Point) -> JobView | None:
    """The tenant's job at `point`; None when the tenant has no such job or it did not exist yet."""
    return view_as_of(await histories.get(tenant, job_id), point)
