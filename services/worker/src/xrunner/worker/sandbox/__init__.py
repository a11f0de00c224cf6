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


class Running(Protocol):
    """A started attempt: its output streams, its exit, and how to stop it (the whole process tree)."""

    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader

    async def wait(self) -> int: ...

    def signal_all(self, sig: int) -> None: ...


class SandboxError(Exception):
    """The sandbox could not start the job (bad cwd, missing executable, ...); the attempt fails with this reason."""


class Sandboxes(Protocol):
    name: Sandbox

    async def start(self, launch: Launch) -> Running: ...
