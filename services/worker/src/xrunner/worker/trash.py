"""Removes finished attempts' workspaces off the worker's event loop, many per thread hand-off.

Removing a directory waits for the filesystem: on this machine's ext4 under load an `rmdir` took 0.3 ms at the
median and up to 35 ms (`docs/benchmarks.md`, "Session 6: before and after"), and on the loop that wait held up every
other job and the outcome of the attempt that had just ended. A workspace's path names its attempt, so nothing
reuses it while it waits here. A worker that dies first leaves it behind, as one that died during an attempt
always has: nothing sweeps old workspaces at start yet.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path


class Trash:
    def __init__(self) -> None:
        self._paths: list[Path] = []
        self._wake = asyncio.Event()

    def add(self, *paths: Path) -> None:
        self._paths.extend(paths)
        self._wake.set()

    async def run(self) -> None:
        """Remove what was added, in one thread hand-off per round, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.empty()

    async def empty(self) -> None:
        """Remove everything added so far (also at stop)."""
        paths, self._paths = self._paths, []
        if paths:
            await asyncio.to_thread(_remove, paths)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
