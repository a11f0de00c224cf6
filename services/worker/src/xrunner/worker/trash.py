"""Removes finished attempts' workspaces off the worker's event loop, many per thread hand-off.

Removing a directory waits for the filesystem: on this machine's ext4 under load an `rmdir` took 0.3 ms at the
median and up to 35 ms (`docs/benchmarks.md`, "Session 6: before and after"), and on the loop that wait held up every
other job and the outcome of the attempt that had just ended. A workspace's path names its attempt, so nothing
reuses it while it waits here.

Each worker's workspaces live in a folder of its own id (`<workspace dir>/<worker id>/<job>-<attempt>`), so what a
worker that died left there (its attempts' workspaces and log spools, and what was waiting here) is removed when a
worker of that id starts again (`leftovers`), after the previous life's reaper has killed its jobs. Every such
attempt had started, so none of them can run again under the same name. A worker without a stable id
(`XR_WORKER_WORKER_ID` unset: host name and pid) never starts again under its id, and its folder stays behind.
"""

from __future__ import annotations

import asyncio
import os
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
            await asyncio.to_thread(remove, paths)


def leftovers(workspaces: Path) -> list[Path]:
    """What a previous life of this worker left in its folder (nothing when the folder is new)."""
    try:
        return list(workspaces.iterdir())
    except FileNotFoundError:
        return []


def remove(paths: list[Path]) -> None:
    """Remove `paths` now, each a directory or a file (blocking: the caller hands it to a thread). Most workspaces
    are empty (a job that wrote no file): one `rmdir` removes them, where `rmtree` first looks at what the path is,
    opens it and lists it (that walk was 8 % of the worker's CPU samples running `true` jobs)."""
    for path in paths:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except NotADirectoryError:  # a file, or a link (never followed)
            path.unlink(missing_ok=True)
        except OSError:  # not empty
            shutil.rmtree(path, ignore_errors=True)
