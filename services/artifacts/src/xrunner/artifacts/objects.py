"""The artifacts service's access to the object store the workers write: read an object into a local file, write a
derived one (a thumbnail) beside it. A local directory (the embedded default) or S3 through aioboto3."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import aioboto3
from botocore.config import Config

from xrunner.artifacts.settings import ArtifactsSettings


class Objects(Protocol):
    """Objects under keys such as `tenants/<tenant>/jobs/<job_id>/<attempt>/<name>`."""

    async def fetch(self, key: str, scratch: Path) -> Path:
        """A local file holding the object's bytes: the stored file itself, or a download into `scratch`."""
        ...

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def close(self) -> None: ...


class LocalObjects:
    """Objects as files below `root`, as the worker's local store writes them."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        """The file `key` maps to; a key that is not a plain relative path below the root is refused."""
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts) or "\\" in key or "\0" in key:
            raise ValueError(f"object key {key!r} is not a relative path below the store")
        path = self.root.joinpath(*parts)
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"object key {key!r} escapes the store")
        return path

    async def fetch(self, key: str, scratch: Path) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no object {key!r}")
        return path

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._put, self.path(key), data)

    async def close(self) -> None:
        return None

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        """Whole or not at all: written aside, then renamed."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".put-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise


class S3Objects:
    """Objects in an S3 bucket (or anything that speaks its protocol) through one long-lived aioboto3 client."""

    def __init__(self, settings: ArtifactsSettings) -> None:
        self.bucket = settings.s3_bucket
        self._session = aioboto3.Session(
            aws_access_key_id=settings.s3_access_key_id or None,
            aws_secret_access_key=settings.s3_secret_access_key or None,
            region_name=settings.s3_region,
        )
        self._endpoint_url = settings.s3_endpoint_url or None
        self._config = Config(
            connect_timeout=10, read_timeout=60, retries={"max_attempts": 5, "mode": "standard"},
            s3={"addressing_style": "path" if self._endpoint_url else "auto"},
        )
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def fetch(self, key: str, scratch: Path) -> Path:
        dest = scratch / "object"
        await (await self._s3()).download_file(self.bucket, key, str(dest))
        return dest

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await (await self._s3()).put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    async def close(self) -> None:
        async with self._lock:
            self._client = None
            await self._stack.aclose()

    async def _s3(self) -> Any:
        async with self._lock:
            if self._client is None:
                client = self._session.client("s3", endpoint_url=self._endpoint_url, config=self._config)
                self._client = await self._stack.enter_async_context(client)
            return self._client


def open_objects(settings: ArtifactsSettings) -> Objects:
    """The store the settings name (the workers' store: share `XR_ARTIFACT_STORE`, `XR_ARTIFACT_DIR`, `XR_S3_*`)."""
    if settings.artifact_store == "local":
        return LocalObjects(settings.artifact_dir)
    if not settings.s3_bucket:
        raise ValueError("XR_ARTIFACTS_ARTIFACT_STORE=s3 needs XR_ARTIFACTS_S3_BUCKET")
    return S3Objects(settings)
