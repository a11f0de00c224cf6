"""One S3 bucket (or anything that speaks its protocol) through one long-lived aioboto3 client, opened on first
use: what the worker's, the artifacts service's and the archive's stores share."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aioboto3
from botocore.config import Config


class S3Bucket:
    def __init__(self, bucket: str, *, endpoint_url: str = "", region: str = "us-east-1", access_key_id: str = "",
                 secret_access_key: str = "") -> None:
        self.bucket = bucket
        self._session = aioboto3.Session(aws_access_key_id=access_key_id or None,
                                         aws_secret_access_key=secret_access_key or None, region_name=region)
        self._endpoint_url = endpoint_url or None
        # S3-compatible servers behind a custom endpoint (MinIO, moto) rarely resolve virtual-host buckets.
        self._config = Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 5, "mode": "standard"},
                              s3={"addressing_style": "path" if endpoint_url else "auto"}, signature_version="s3v4")
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def _s3(self) -> Any:
        """The client, opened on first use and kept until `close`."""
        async with self._lock:
            if self._client is None:
                client = self._session.client("s3", endpoint_url=self._endpoint_url, config=self._config)
                self._client = await self._stack.enter_async_context(client)
            return self._client

    async def close(self) -> None:
        async with self._lock:
            self._client = None
            await self._stack.aclose()
