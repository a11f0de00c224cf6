"""The object store the workers write, as the artifact service uses it: a download URL for a key (S3 presigns one; the
local store has none, the service serves those bytes itself), byte ranges of local files, a whole object as a local
file (for the previewer), reads and writes of small objects (previews, thumbnails), and deletion (for retention)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from botocore.exceptions import ClientError

from xrunner.artifacts.settings import ArtifactsSettings
from xrunner.servicekit.s3 import S3Bucket

CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Download:
    """How a signed URL presents the object: its file name and type, and whether to force an attachment."""

    filename: str
    content_type: str
    disposition: str


class ObjectStore(Protocol):
    """Objects under keys `tenants/<tenant>/jobs/<job_id>/<attempt>/<name>`, as the workers wrote them."""

    async def presign(self, key: str, download: Download, expires_in: int) -> str | None:
        """A URL that fetches `key` without credentials for `expires_in` s, or None when the service serves it."""
        ...

    async def read(self, key: str, limit: int) -> bytes:
        """At most `limit` bytes from the start of the object."""
        ...

    async def fetch(self, key: str, scratch: Path) -> Path:
        """A local file holding the object's bytes: the stored file itself, or a download into `scratch`."""
        ...

    async def put(self, key: str, body: bytes, content_type: str) -> None: ...

    async def delete(self, key: str) -> None:
        """Remove `key`; a key already gone is not an error."""
        ...

    async def close(self) -> None: ...


class LocalStore:
    """Objects as files below `root` (the embedded default)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """The file `key` maps to; refuses keys that would land outside the root."""
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts) or "\\" in key or "\0" in key:
            raise ValueError(f"object key {key!r} is not a relative path below the store")
        root = self.root.resolve()
        path = root.joinpath(*parts)
        if not path.resolve().is_relative_to(root):
            raise ValueError(f"object key {key!r} escapes the store")
        return path

    async def presign(self, key: str, download: Download, expires_in: int) -> str | None:
        return None

    async def read(self, key: str, limit: int) -> bytes:
        def _read() -> bytes:
            with self.path(key).open("rb") as src:
                return src.read(limit)

        return await asyncio.to_thread(_read)

    async def fetch(self, key: str, scratch: Path) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no object {key!r}")
        return path

    async def put(self, key: str, body: bytes, content_type: str) -> None:
        await asyncio.to_thread(_write_whole, self.path(key), body)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)

    async def close(self) -> None:
        return None


def _write_whole(path: Path, body: bytes) -> None:
    """Write aside, then rename: readers see the whole object or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".put-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


async def file_range(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    """`length` bytes of `path` from `start`, read off the event loop one chunk at a time (memory stays flat)."""
    src = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(src.seek, start)
        left = length
        while left > 0:
            chunk = await asyncio.to_thread(src.read, min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
    finally:
        await asyncio.to_thread(src.close)


class S3Store(S3Bucket):
    """Objects in an S3 bucket (or anything that speaks its protocol)."""

    def __init__(self, settings: ArtifactsSettings) -> None:
        super().__init__(settings.s3_bucket, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
                         access_key_id=settings.s3_access_key_id,
                         secret_access_key=settings.s3_secret_access_key)

    async def presign(self, key: str, download: Download, expires_in: int) -> str | None:
        params = {"Bucket": self.bucket, "Key": key, "ResponseContentDisposition": download.disposition,
                  "ResponseContentType": download.content_type}
        s3 = await self._s3()
        url: str = await s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
        return url

    async def read(self, key: str, limit: int) -> bytes:
        s3 = await self._s3()
        answer = await s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{max(limit - 1, 0)}")
        async with answer["Body"] as body:
            data: bytes = await body.read()
        return data[:limit]

    async def fetch(self, key: str, scratch: Path) -> Path:
        dest = scratch / "object"
        await (await self._s3()).download_file(self.bucket, key, str(dest))
        return dest

    async def put(self, key: str, body: bytes, content_type: str) -> None:
        s3 = await self._s3()
        await s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        try:
            await s3.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:  # S3 answers 204 for a missing key; some compatible servers 404
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise


def open_store(settings: ArtifactsSettings) -> LocalStore | S3Store:
    """The store the settings name (the workers' store: share `XR_ARTIFACT_STORE`, `XR_ARTIFACT_DIR`, `XR_S3_*`); an
    S3 store without a bucket fails at startup."""
    if settings.artifact_store == "local":
        return LocalStore(settings.artifact_dir)
    if not settings.s3_bucket:
        raise ValueError("XR_ARTIFACTS_ARTIFACT_STORE=s3 needs XR_ARTIFACTS_S3_BUCKET")
    return S3Store(settings)
