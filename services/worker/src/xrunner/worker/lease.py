"""This worker's lease as its own process sees it: when a heartbeat was last stored, and whether the reaper fenced
the worker's jobs (killed them for a lapsed lease) since an attempt began.

The reaper counts fences in a small file beside its lock, bumped *before* it kills anything: an attempt notes the
count when it begins, and a count that moved since means its processes were (or may have been) killed by the fence
and the scheduler declares the attempt lost, so the worker appends nothing more for it. Times are
`time.monotonic()`, one clock for every process on the host.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path


def fence_marker(lock_dir: Path, worker_id: str) -> Path:
    """Where the reaper of `worker_id` counts its fences (beside its lock, so workspace listings skip both)."""
    return lock_dir / f".reaper-{worker_id}.fences"


def read_fences(marker: Path) -> int:
    with contextlib.suppress(FileNotFoundError, ValueError):
        return int(marker.read_text() or 0)
    return 0


def count_fence(marker: Path) -> int:
    """Bump the count atomically (a reader never sees a half-written file); returns the new count."""
    count = read_fences(marker) + 1
    tmp = marker.with_name(f"{marker.name}.tmp")
    tmp.write_text(str(count))
    os.replace(tmp, marker)
    return count


class Lease:
    """`renewed(sent_at)` after each stored heartbeat (sent at `sent_at`); `watchdog` hears of each renewal."""

    def __init__(self, fence_after_s: float, marker: Path) -> None:
        self.fence_after_s, self.marker = fence_after_s, marker
        self.renewed_at = -math.inf
        self.watchdog: Callable[[float], None] | None = None

    def renewed(self, sent_at: float) -> None:
        self.renewed_at = max(self.renewed_at, sent_at)
        if self.watchdog is not None:
            self.watchdog(sent_at)

    def fresh(self) -> bool:
        """Renewed recently enough that the reaper has not fenced (its clock starts at the same send time or later,
        so whenever it fenced, this is already False)."""
        return time.monotonic() - self.renewed_at < self.fence_after_s

    def fences(self) -> int:
        return read_fences(self.marker)

    def fenced(self, since: int) -> bool:
        """Whether the reaper fenced since the count was `since`."""
        return self.fences() != since

    def held(self, since: int) -> bool:
        """Whether an attempt begun at fence count `since` may (still) run."""
        return self.fresh() and not self.fenced(since)
