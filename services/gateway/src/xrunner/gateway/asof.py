"""A job as of any event (`GET /v1/jobs/{id}?as_of=SEQ|TIME`): the same pure fold the read model uses
(`lifecycle.fold`), over the job's history up to that point."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from nats.js import JetStreamContext

from xrunner.contracts import codec, lifecycle
from xrunner.contracts.api import JobView
from xrunner.contracts.events import Event
from xrunner.gateway.readmodel import artifact_counts
from xrunner.servicekit import archive as archive_reader
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


async def job_as_of(js: JetStreamContext, archive: Archive | None, tenant: str, job_id: str,
                    point: Point) -> JobView | None:
    """The tenant's job at `point`, its archived events too; None when the tenant has no such job or it did not
    exist yet."""
    if isinstance(point, int):
        raw = await archive_reader.job_history(js, archive, tenant, job_id, through=point)
    else:
        raw = await archive_reader.job_history(js, archive, tenant, job_id,
                                               past=lambda data: codec.decode_event(data).occurred_at > point)
    return view_as_of([(seq, codec.decode_event(data)) for seq, data in raw], point)
