"""One S3 bucket (or anything that speaks its protocol) through one long-lived aioboto3 client, opened on first
use: what the worker's, the artifacts service's and the archive's stores share.

aioboto3 (with boto3 and botocore) is imported on first use, not with this module: every service imports the
archive through its projector, and the import alone costs ~0.3 s of CPU at each start (a third of a scheduler's),
for a client most processes never open."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class S3Bucket:
    def __init__(self, bucket: str, *, endpoint_url: str = "", region: str = "us-east-1", access_key_id: str = "",
                 secret_access_key: str = "") -> None:
        self.bucket = bucket
        self._credentials = {"aws_access_key_id": access_key_id or None,
                             "aws_secret_access_key": secret_access_key or None, "region_name": region}
        self._endpoint_url = endpoint_url or None
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def _s3(self) -> Any:
        """The client, opened on first use and kept until `close`."""
        async with self._lock:
            if self._client is None:
                import aioboto3
                from botocore.config import Config

                # S3-compatible servers behind a custom endpoint (MinIO, moto) rarely resolve virtual-host buckets.
                config = Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 5, "mode": "standard"},
                                s3={"addressing_style": "path" if self._endpoint_url else "auto"},
                                signature_version="s3v4")
                session = aioboto3.Session(**self._credentials)
                client = session.client("s3", endpoint_url=self._endpoint_url, config=config)
                self._client = await self._stack.enter_async_context(client)
            return self._client

    async def close(self) -> None:
        async with self._lock:
            self._client = None
            await self._stack.aclose()
