"""The SAQ worker's settings (`python -m saq saq_tasks.settings`): one task that runs a command as a subprocess."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from saq import Queue


async def run(ctx: dict[str, Any], *, argv: list[str]) -> int:
    proc = await asyncio.create_subprocess_exec(*argv)
    return await proc.wait()


settings = {
    "queue": Queue.from_url(os.environ.get("PEERS_REDIS_URL", "redis://127.0.0.1:6379")),
    "functions": [run],
    "concurrency": int(os.environ.get("PEERS_CONCURRENCY", "100")),
}
