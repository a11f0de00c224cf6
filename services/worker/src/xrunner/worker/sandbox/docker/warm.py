"""Warm pools: per configured image, containers started ahead of demand so a job only pays for an exec. Each one
serves exactly one job and is then removed (nothing a job leaves behind can reach the next); the pool refills in
the background. A warm image must have `sh`: it runs the holder that keeps the container up until its job comes."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from prometheus_client import Counter, Gauge

log = structlog.get_logger()

HITS = Counter("xrunner_worker_warm_hits_total", "Docker jobs served by a warm container", ["image"])
MISSES = Counter("xrunner_worker_warm_misses_total", "Docker jobs of a pooled image that found no warm one", ["image"])
READY = Gauge("xrunner_worker_warm_ready", "Warm containers ready for a job", ["image"])
# PID 1 of a warm container: the kernel spares it the job's signals (`kill -1` included); its sleep may die.
HOLDER = ["sh", "-c", "while :; do sleep 3600; done"]
BACKOFF_MAX_S = 30.0


@dataclass
class Warm:
    """A started container waiting for its one job, with the workspace already bind-mounted into it."""

    container_id: str
    workspace: Path
    died: asyncio.Future[int]
    entrypoint: list[str]  # the image's, which an exec does not apply by itself ...
    cmd: list[str]  # ... nor its default command
    memory_bytes: int
    cpu_millis: int

    def argv(self, argv: list[str]) -> list[str]:
        """What `docker run image argv...` would run: the entrypoint, then the job's argv or the image's CMD."""
        return [*self.entrypoint, *(argv or self.cmd)]


def parse_warm_images(text: str, default_size: int) -> dict[str, int]:
    """`"xrunner/busybox:test=4,alpine"` → {"xrunner/busybox:test": 4, "alpine": default_size}. A malformed entry
    raises ValueError, so a worker with a typo in its settings does not start."""
    pools: dict[str, int] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        image, sep, size = (part.strip() for part in entry.partition("="))
        if not image or (sep and not size.isdigit()):
            raise ValueError(f"warm image entries look like IMAGE or IMAGE=SIZE, got {entry!r}")
        if (count := int(size) if sep else default_size) > 0:
            pools[image] = count
    return pools


class WarmPool:
    """Keeps `size` warm containers of `image` ready; `make` starts one, `drop` removes one never used."""

    def __init__(
        self, image: str, size: int, make: Callable[[str], Awaitable[Warm]], drop: Callable[[Warm], None]
    ) -> None:
        self.image, self.size, self.make, self.drop = image, size, make, drop
        self.ready: deque[Warm] = deque()
        self.wanted = asyncio.Event()
        self.wanted.set()
        self.filling: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()
        READY.labels(image).set(0)

    def start(self) -> None:
        self.filling = asyncio.get_running_loop().create_task(self._fill())

    def take(self) -> Warm | None:
        """A ready container for one job (counted as a hit), or None (a miss: the job takes the cold path)."""
        found = None
        while self.ready and found is None:
            warm = self.ready.popleft()
            if warm.died.done():  # killed behind our back: useless
                self.drop(warm)
            else:
                found = warm
        (HITS if found else MISSES).labels(self.image).inc()
        READY.labels(self.image).set(len(self.ready))
        self.wanted.set()
        return found

    async def close(self) -> None:
        """Stop refilling (a batch being started finishes, so nothing is left half made) and drop what is ready."""
        self.stopping.set()
        self.wanted.set()
        if self.filling is not None:
            await asyncio.gather(self.filling, return_exceptions=True)
        while self.ready:
            self.drop(self.ready.popleft())
        READY.labels(self.image).set(0)

    async def _fill(self) -> None:
        """Start what is missing, all at once (a burst of jobs drains a pool faster than one start at a time
        refills it); on failure (the image is missing, the daemon is down) retry with backoff."""
        backoff = 1.0
        while True:
            await self.wanted.wait()
            self.wanted.clear()
            if self.stopping.is_set():
                return
            made = await asyncio.gather(*(self.make(self.image) for _ in range(self.size - len(self.ready))),
                                        return_exceptions=True)
            failures = [m for m in made if isinstance(m, BaseException)]
            self.ready.extend(m for m in made if isinstance(m, Warm))
            READY.labels(self.image).set(len(self.ready))
            if failures:
                log.warning("cannot start warm containers", image=self.image, failed=len(failures),
                            error=str(failures[0]), retry_in_s=backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), backoff)
                backoff = min(BACKOFF_MAX_S, backoff * 2)
                self.wanted.set()
            else:
                backoff = 1.0
