"""Where artifacts are kept: one `put` interface over a local directory (the embedded default) and S3."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

from xrunner.servicekit.s3 import S3Bucket
from xrunner.worker.settings import WorkerSettings

COPY_CHUNK = 1024 * 1024
INLINE_BYTES = 64 * 1024


class Readable(Protocol):
    """A binary stream read from its current position to its end."""

    def read(self, size: int = -1, /) -> bytes: ...


Body = Path | bytes | Readable


class ObjectStore(Protocol):
    """Stores objects under keys such as `tenants/<tenant>/jobs/<job_id>/<attempt>/<name>`."""

    async def put(self, key: str, body: Body, content_type: str, *, sync: bool = True) -> None:
        """Store `body` under `key`; `sync=False` when the object need not survive a machine crash once stored
        (it is kept durably elsewhere too): a store may then skip syncing it to disk."""
        ...

    async def close(self) -> None: ...


class LocalStore:
    """Objects as files below `root`; each appears whole or not at all (written aside, then renamed)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._resolved: Path | None = None

    async def put(self, key: str, body: Body, content_type: str, *, sync: bool = True) -> None:
        """Small bytes that need no sync are written on the loop (a thread hand-off costs more than the write)."""
        if not sync and isinstance(body, bytes) and len(body) <= INLINE_BYTES:
            self._put(self.path(key), body, sync=False)
        else:
            await asyncio.to_thread(self._put, self.path(key), body, sync=sync)

    async def close(self) -> None:
        return None

    def path(self, key: str) -> Path:
        """The file `key` maps to; refuses keys that would land outside the root."""
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts) or "\\" in key or "\0" in key:
            raise ValueError(f"object key {key!r} is not a relative path below the store")
        if self._resolved is None:
            self._resolved = self.root.resolve()
        root = self._resolved
        path = root.joinpath(*parts)
        if not path.resolve().is_relative_to(root):
            raise ValueError(f"object key {key!r} escapes the store")
        return path

    def _put(self, path: Path, body: Body, *, sync: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".put-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                _copy(body, out)
                out.flush()
                if sync:
                    os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise


def _copy(body: Body, out: Any) -> None:
    if isinstance(body, bytes):
        out.write(body)
    elif isinstance(body, Path):
        with body.open("rb") as src:
            shutil.copyfileobj(src, out, COPY_CHUNK)
    else:
        while chunk := body.read(COPY_CHUNK):
            out.write(chunk)


class S3Store(S3Bucket):
    """Objects in an S3 bucket (or anything that speaks its protocol)."""

    async def put(self, key: str, body: Body, content_type: str, *, sync: bool = True) -> None:
        s3 = await self._s3()
        if isinstance(body, bytes):
            await s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
            return
        extra = {"ContentType": content_type}
        if isinstance(body, Path):
            with body.open("rb") as src:
                await s3.upload_fileobj(_OffLoop(src), self.bucket, key, ExtraArgs=extra)
        else:
            await s3.upload_fileobj(_OffLoop(body), self.bucket, key, ExtraArgs=extra)


class _OffLoop:
    """Reads a blocking stream in a thread, so a large upload never stalls the event loop."""

    def __init__(self, src: Readable) -> None:
        self.src = src

    async def read(self, size: int = -1) -> bytes:
        return await asyncio.to_thread(self.src.read, size)


def open_store(settings: WorkerSettings) -> ObjectStore:
    """The object store the settings name; an S3 store without a bucket fails at startup, not at the first job."""
    if settings.artifact_store == "local":
        return LocalStore(settings.artifact_dir)
    if not settings.s3_bucket:
        raise ValueError("XR_WORKER_ARTIFACT_STORE=s3 needs XR_WORKER_S3_BUCKET")
    return S3Store(
        settings.s3_bucket,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )
