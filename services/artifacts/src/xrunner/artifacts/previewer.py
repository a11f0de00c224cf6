"""Derives the preview of each stored artifact once and records it as `artifact.previewed`, with the thumbnail (if
any) stored beside the object as `<key>.preview.png`.

Its cursor is the `artifacts.previews` row of the service's position table, advanced after each artifact is
handled; it follows the `artifact.stored` events from there with an ordered consumer. An artifact handled twice (a
crash between the append and the advance, or two instances) appends once: the message id is `<artifact_id>:
previewed`, and past the stream's duplicate window a repeat carries the same preview, which the index folds to the
same row. A file that cannot be previewed is a `none` preview with the reason; only the store or the log being
unreachable stops the consumer, which then starts again from its position. Text (most artifacts: every job's
`logs.txt`) is derived here, in a thread: it runs no decoder, reads 64 KiB and counts lines in 1 MiB chunks. Images,
PDFs and archives go to a limited child process of their own (`isolation.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import msgspec
import structlog
from botocore.exceptions import ClientError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from xrunner.artifacts import metrics
from xrunner.artifacts.isolation import Isolated
from xrunner.artifacts.objects import ObjectStore
from xrunner.artifacts.previews import NOT_PREVIEWABLE, SNIFF, Preview, cut, failed, neutralise, none, sniff, text
from xrunner.contracts import codec, subjects
from xrunner.contracts.events import ArtifactPreviewed, ArtifactStored
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.ids import new_id
from xrunner.servicekit.projector import advance, position

log = structlog.get_logger()

CURSOR = "artifacts.previews"
MAX_BACKOFF_S = 5.0
MAX_REASON_BYTES = 500
THUMBNAIL_SUFFIX = ".preview.png"

class Previewer:
    """Follows `artifact.stored` from its committed position and previews each artifact in turn."""

    def __init__(self, js: JetStreamContext, pool: asyncpg.Pool, objects: ObjectStore, isolated: Isolated, *,
                 max_bytes: int, ids: Callable[[], str] = new_id) -> None:
        self.js, self.pool, self.objects, self.isolated = js, pool, objects, isolated
        self.max_bytes, self.ids = max_bytes, ids
        self.store = EventStore(js)

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self._follow()
            except Exception as exc:
                failures += 1
                log.warning("previews restart from their position", error=repr(exc), exc_info=failures > 3)
                await asyncio.sleep(min(MAX_BACKOFF_S, 0.05 * 2**failures))

    async def _follow(self) -> None:
        async with self.pool.acquire() as conn:
            start = await position(conn, CURSOR)
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start + 1)
        sub = await self.js.subscribe(subjects.job_events(token="artifact_stored"), cb=queue.put,
                                      ordered_consumer=True, config=config, stream=subjects.EVENTS_STREAM)
        try:
            while True:
                msg = await queue.get()
                await self.handle(msg.data)
                async with self.pool.acquire() as conn:
                    await advance(conn, CURSOR, msg.metadata.sequence.stream)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def handle(self, data: bytes) -> None:
        """Preview one `artifact.stored` event (anything else on the subject is passed) and append the result."""
        try:
            stored = codec.decode_event(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("undecodable artifact event passed", error=str(exc))
            return
        if not isinstance(stored, ArtifactStored):
            return
        began = time.perf_counter()
        preview, sniffed = await self.preview(stored)
        metrics.PREVIEW_SECONDS.observe(time.perf_counter() - began)
        metrics.PREVIEWS.labels(sniffed, outcome(preview)).inc()
        thumbnail_key = None
        if preview.thumbnail is not None:
            thumbnail_key = stored.key + THUMBNAIL_SUFFIX
            await self.objects.put(thumbnail_key, preview.thumbnail, "image/png")
        await self.store.append(previewed(stored, preview, thumbnail_key, self.ids(), datetime.now(UTC)),
                                msg_id=f"{stored.artifact_id}:previewed")

    async def preview(self, stored: ArtifactStored) -> tuple[Preview, str]:
        """The artifact's preview and the type its first bytes show ("other" when it was not read)."""
        if not stored.key.startswith(f"tenants/{stored.tenant}/"):
            return none("the object is not under its tenant's prefix"), "other"
        if stored.size > self.max_bytes:
            return none(f"larger than {self.max_bytes:,} bytes: no preview"), "other"
        if stored.size == 0:  # what deriving an empty file gives, without a fetch and a sandbox round trip
            return EMPTY, "text"
        with tempfile.TemporaryDirectory(prefix="xr-preview-") as scratch:
            try:
                path = await self.objects.fetch(stored.key, Path(scratch))
            except (FileNotFoundError, ClientError) as exc:
                if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") not in MISSING:
                    raise
                return none("the object is missing from the store"), "other"
            kind, derived = await asyncio.to_thread(sniff_or_text, path, stored.name)
            if derived is not None:
                return derived, kind
            return await self.isolated.derive(path, stored.name), kind


MISSING = ("404", "NoSuchKey", "NotFound")
EMPTY = Preview(kind="text", text="", line_count=0)  # e.g. the logs.txt of a job that printed nothing


def sniff_or_text(path: Path, name: str) -> tuple[str, Preview | None]:
    """The type the file's first bytes show, and its preview when that is text: no decoder runs for it (64 KiB
    decoded, the lines counted in 1 MiB chunks), so it is derived here rather than in a child process."""
    with path.open("rb") as src:
        kind = sniff(src.read(SNIFF), name)
    if kind != "text":
        return kind, None
    try:
        return kind, text(path, name)
    except OSError as exc:  # as the child reports a decoder's failure: a reason, not a stopped consumer
        return kind, failed(exc)


def outcome(preview: Preview) -> str:
    if preview.kind != "none":
        return "made"
    return "none" if preview.reason == NOT_PREVIEWABLE else "failed"


def previewed(stored: ArtifactStored, preview: Preview, thumbnail_key: str | None, event_id: str,
              now: datetime) -> ArtifactPreviewed:
    """The event recording `preview` of `stored`. Pure."""
    return ArtifactPreviewed(
        event_id=event_id, occurred_at=now, tenant=stored.tenant, job_id=stored.job_id, attempt=stored.attempt,
        artifact_id=stored.artifact_id, kind=preview.kind, reason=cut(neutralise(preview.reason), MAX_REASON_BYTES)[0],
        text=preview.text,
        line_count=preview.line_count, thumbnail_key=thumbnail_key,
        thumbnail_content_type="image/png" if thumbnail_key else None, page_count=preview.page_count,
        entries=preview.entries, truncated=preview.truncated,
    )
