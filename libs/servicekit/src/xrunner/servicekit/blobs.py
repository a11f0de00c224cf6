"""Whole objects by key, for what the log archives (`archive`): a local directory or an S3 bucket (aioboto3), chosen
by the `archive_*` settings every service shares."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Protocol

from xrunner.servicekit.s3 import S3Bucket
from xrunner.servicekit.settings import CommonSettings


class Blobs(Protocol):
    async def put(self, key: str, body: bytes) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def keys(self, prefix: str) -> list[str]:
        """Every key that starts with `prefix`."""
        ...

    async def close(self) -> None: ...


class LocalBlobs:
    """Objects as files below `root`, each written aside then renamed (whole or absent)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    async def put(self, key: str, body: bytes) -> None:
        await asyncio.to_thread(self._put, self.root / key, body)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread((self.root / key).read_bytes)

    async def keys(self, prefix: str) -> list[str]:
        def listed() -> list[str]:
            found = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
            return sorted(k for k in found if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith("."))

        return await asyncio.to_thread(listed)

    async def close(self) -> None:
        return None

    @staticmethod
    def _put(path: Path, body: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        with os.fdopen(fd, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)


class S3Blobs(S3Bucket):
    """Objects in an S3 bucket."""

    async def put(self, key: str, body: bytes) -> None:
        s3 = await self._s3()
        await s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/gzip")

    async def get(self, key: str) -> bytes:
        answer = await (await self._s3()).get_object(Bucket=self.bucket, Key=key)
        async with answer["Body"] as body:
            data: bytes = await body.read()
        return data

    async def keys(self, prefix: str) -> list[str]:
        paginator = (await self._s3()).get_paginator("list_objects_v2")
        return [item["Key"] async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                for item in page.get("Contents", [])]


def open_blobs(settings: CommonSettings) -> Blobs | None:
    """The archive's store as the settings name it; None when there is no archive."""
    if settings.archive_store == "":
        return None
    if settings.archive_store == "local":
        if not settings.archive_dir:
            raise ValueError("XR_ARCHIVE_STORE=local needs XR_ARCHIVE_DIR")
        return LocalBlobs(settings.archive_dir)
    if not settings.archive_bucket:
        raise ValueError("XR_ARCHIVE_STORE=s3 needs XR_ARCHIVE_BUCKET")
    return S3Blobs(settings.archive_bucket, endpoint_url=settings.archive_s3_endpoint_url,
                   region=settings.archive_s3_region, access_key_id=settings.archive_s3_access_key_id,
                   secret_access_key=settings.archive_s3_secret_access_key)
