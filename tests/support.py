"""Polling with a deadline: how tests wait for observable state instead of sleeping."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    fn: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    timeout: float = 10.0,
    what: str = "",
    interval: float = 0.02,
) -> T:
    """Call `fn` (sync or async) until it returns something truthy, and return that; fail the test on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = fn()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or fn!r}; last value: {result!r}")
        await asyncio.sleep(interval)


def with_marker(marker: str) -> list[int]:
    """Host pids whose argv mentions `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found
