"""Sandboxes: how a job's process is started, contained, and stopped, behind one interface."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from xrunner.contracts.spec import JobSpec, Sandbox


@dataclass
class Launch:
    """What a sandbox needs to start one attempt."""

    job_id: str
    attempt: int
    spec: JobSpec
    workspace: Path


STDIN_BACKLOG = 1 << 20  # input bytes a job may leave unread; more is dropped


class Running(Protocol):
    """A started attempt: its output streams, its exit, how to stop it (the whole process tree), and, for an
    interactive job, its stdin. A tty job's terminal output all arrives on `stdout` (`stderr` is empty)."""

    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader
    workspace: Path  # the host directory holding the job's workspace: artifacts are collected from it

    async def wait(self) -> int: ...

    def signal_all(self, sig: int) -> None: ...

    def write_stdin(self, data: bytes) -> bool:
        """Feed an interactive job's stdin (ignored for other jobs, or once stdin is closed). False when `data`
        was dropped because the job left `STDIN_BACKLOG` bytes unread: the worker holds no more for it."""

    def close_stdin(self) -> None:
        """End an interactive job's stdin."""

    def resize(self, rows: int, cols: int) -> None:
        """Resize a tty job's terminal (ignored for other jobs)."""


class SandboxError(Exception):
    """The sandbox could not start the job (bad cwd, missing executable, ...); the attempt fails with this reason."""


class Sandboxes(Protocol):
    """One kind of sandbox. `start` may run the job in a workspace of its own (a warm one) instead of
    `launch.workspace`; `Running.workspace` says which."""

    name: Sandbox

    async def start(self, launch: Launch) -> Running: ...

    def settled(self) -> None:
        """An attempt of this sandbox ended and its outcome is stored: a moment off every job's critical path to
        top up what the sandbox keeps warm."""

    async def close(self) -> None:
        """Release what the sandbox holds (warm pools, clients) at the worker's stop."""
