"""The no-system baseline: the client spawns each command itself with asyncio, at most 100 at once."""

from __future__ import annotations

import asyncio
import os
import time

from workloads import Completion


class Baseline:
    name = "baseline"

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.gate = asyncio.Semaphore(self.slots)

    async def submit(self, argv: list[str]) -> asyncio.Future[Completion]:
        end: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._run(argv, end))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return end

    async def _run(self, argv: list[str], end: asyncio.Future[Completion]) -> None:
        async with self.gate:
            proc = await asyncio.create_subprocess_exec(*argv)
            code = await proc.wait()
        end.set_result(Completion(code == 0, time.perf_counter()))

    def roots(self) -> list[int]:
        return [os.getpid()]  # the client is the system here (and the children it spawns and reaps)

    async def stop(self) -> None:
        await asyncio.gather(*self.tasks, return_exceptions=True)
