"""Keeps an attempt's artifacts: uploads the selected workspace files and the whole log to the object store and
announces each with `artifact.stored`, before the attempt's outcome is appended."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import structlog

from xrunner.contracts.events import ArtifactStored, JobEvent
from xrunner.contracts.messages import RunJob
from xrunner.servicekit.ids import new_id
from xrunner.worker.collect import LOG_NAME, Found, open_regular, select, shown
from xrunner.worker.logstream import LogStream
from xrunner.worker.objectstore import ObjectStore
from xrunner.worker.settings import WorkerSettings

log = structlog.get_logger()

Announce = Callable[[JobEvent, str], Awaitable[None]]
"""Appends one of the attempt's events under a kind unique within the attempt (compare-and-set, fenced)."""


class Digest:
    """Reads at most `limit` bytes of `src`, hashing and counting what it hands out."""

    def __init__(self, src: BinaryIO, limit: int) -> None:
        self.src, self.left = src, limit
        self.size = 0
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        want = self.left if size < 0 else min(size, self.left)
        data = self.src.read(want) if want > 0 else b""
        self.sha256.update(data)
        self.size += len(data)
        self.left -= len(data)
        return data


class Budget:
    """The per-file and per-job size caps of one attempt's artifacts (the job's log is outside them)."""

    def __init__(self, per_file: int, total: int) -> None:
        self.per_file, self.left, self.total = per_file, total, total

    def take(self, size: int) -> str | None:
        """Count a file of `size` bytes against the caps, or say which one it would break."""
        if size > self.per_file:
            return f"{size} bytes, over the limit of {self.per_file} bytes per file"
        if size > self.left:
            return f"{size} bytes would pass the job's limit of {self.total} bytes of artifacts in total"
        self.left -= size
        return None


def content_type(name: str) -> str:
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def object_key(run: RunJob, name: str) -> str:
    return f"tenants/{run.tenant}/jobs/{run.job_id}/{run.attempt}/{name}"


class Artifacts:
    def __init__(self, store: ObjectStore, settings: WorkerSettings) -> None:
        self.store = store
        self.max_bytes, self.max_count = settings.max_artifact_bytes, settings.max_artifacts
        self.max_total = settings.max_artifacts_total_bytes

    async def keep(self, run: RunJob, workspace: Path, logs: LogStream, announce: Announce) -> None:
        """Keep the files the job's globs select, finish `logs`, then keep the whole log as `logs.txt` (none for a
        job that wrote nothing: an empty object, its `artifact.stored` and its preview would be two events and an
        upload per job with nothing in them). Never raises: a file that cannot be kept is a system line in the
        job's log, and the attempt goes on to its end."""
        try:
            current = await self._files(run, workspace, logs, announce)
            await logs.finish()
            if current and (kept := logs.kept()) is not None and kept != b"":
                await self._log(run, kept, announce)
        except Exception:
            log.exception("keeping artifacts failed", job_id=run.job_id, attempt=run.attempt)
        finally:
            if logs.spool is not None:
                logs.spool.unlink(missing_ok=True)

    async def _files(self, run: RunJob, workspace: Path, logs: LogStream, announce: Announce) -> bool:
        """Keep each selected file; False once an announcement fails (the attempt is no longer current)."""
        if _empty(workspace):  # the usual case: nothing to walk, no thread hand-off
            return True
        selection = await asyncio.to_thread(select, workspace, run.spec.artifacts.globs, self.max_count)
        for note in selection.notes:
            await _say(logs, f"artifact {note}")
        budget = Budget(self.max_bytes, self.max_total)
        for found in selection.files:
            try:
                event = await self._file(run, found, budget)
            except Exception as exc:
                await _say(logs, f"artifact {shown(found.name)} not kept: {exc}")
                continue
            if isinstance(event, str):
                await _say(logs, f"artifact {shown(found.name)} not kept: {event}")
            elif not await _announce(announce, event):
                return False
        return True

    async def _file(self, run: RunJob, found: Found, budget: Budget) -> ArtifactStored | str:
        """The stored file's event, or why it was not kept (a limit)."""
        with open_regular(found) as src:
            size = os.fstat(src.fileno()).st_size
            refusal = budget.take(size)
            if refusal:
                return refusal
            return await self._put(run, found.name, Digest(src, size))

    async def _log(self, run: RunJob, kept: bytes | Path, announce: Announce) -> None:
        """Store the whole log without syncing it to disk first: the log stream holds it durably already."""
        try:
            if isinstance(kept, bytes):
                event = await self._put(run, LOG_NAME, kept, sync=False)
            else:
                with kept.open("rb") as src:
                    event = await self._put(run, LOG_NAME, Digest(src, os.fstat(src.fileno()).st_size), sync=False)
        except Exception:
            log.exception("the job's log was not kept", job_id=run.job_id, attempt=run.attempt)
            return
        await _announce(announce, event)

    async def _put(self, run: RunJob, name: str, body: Digest | bytes, *, sync: bool = True) -> ArtifactStored:
        key, kind = object_key(run, name), content_type(name)
        await self.store.put(key, body, kind, sync=sync)
        size, digest = (len(body), hashlib.sha256(body)) if isinstance(body, bytes) else (body.size, body.sha256)
        return ArtifactStored(
            event_id=new_id(),
            occurred_at=datetime.now(UTC),
            tenant=run.tenant,
            job_id=run.job_id,
            attempt=run.attempt,
            artifact_id=new_id(),
            name=name,
            key=key,
            size=size,
            sha256=digest.hexdigest(),
            content_type=kind,
        )


def _empty(directory: Path) -> bool:
    try:
        with os.scandir(directory) as entries:
            return next(entries, None) is None
    except OSError:
        return False  # let the selection find out (and say) what is wrong


async def _announce(announce: Announce, event: ArtifactStored) -> bool:
    try:
        await announce(event, f"artifact:{event.name}")
    except Exception as exc:
        log.warning("artifact not announced", job_id=event.job_id, attempt=event.attempt, name=event.name,
                    error=repr(exc))
        return False
    return True


async def _say(logs: LogStream, line: str) -> None:
    await logs.write("system", f"[xrunner: {line}]\n".encode())
