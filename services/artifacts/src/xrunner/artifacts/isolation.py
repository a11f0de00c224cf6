"""Runs `previews.derive` in a child process of its own, one file per child, under CPU-time, address-space and
wall-clock limits: a decoder that hangs, swells or crashes costs that child, and the caller gets a `none` preview
with the reason, never an exception. A spare child is started ahead (its imports done, waiting on stdin), so a
preview does not wait for Python to start.

The child is `python -m xrunner.artifacts.isolation CPU_S MEMORY_BYTES`: it sets its limits, reads one msgpack
request `[path, name]` from stdin and writes one msgpack `Preview` to stdout."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec

from xrunner.artifacts.previews import Preview, derive, failed, none, warm

MAX_REPLY = 8 * 1024 * 1024  # a reply is a preview: at most 64 KiB of text, 1,000 entries or one small PNG


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 20.0
    cpu_s: int = 10
    memory_bytes: int = 1 << 30


class Isolated:
    """Derives previews in limited, single-use child processes, one at a time."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._spare: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def derive(self, path: Path, name: str) -> Preview:
        async with self._lock:
            child = self._spare or await self._start()
            self._spare = None
            try:
                return await self._ask(child, msgspec.msgpack.encode([str(path), name]))
            finally:
                await _kill(child)
                if not self._closed:
                    self._spare = await self._start()

    async def close(self) -> None:
        """Kill the spare child; a derivation under way ends with its own child (killed by the caller's cancel)."""
        self._closed = True
        if self._spare is not None:
            await _kill(self._spare)
            self._spare = None

    async def _start(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "xrunner.artifacts.isolation", str(self.limits.cpu_s),
            str(self.limits.memory_bytes), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )

    async def _ask(self, child: asyncio.subprocess.Process, request: bytes) -> Preview:
        try:
            out, err = await asyncio.wait_for(child.communicate(request), self.limits.timeout_s)
        except TimeoutError:
            await _kill(child)
            return none(f"deriving the preview took longer than {self.limits.timeout_s:g}s")
        if child.returncode != 0:
            return none(f"deriving the preview failed: {failure(child.returncode, err)}")
        try:
            return msgspec.msgpack.decode(out[:MAX_REPLY], type=Preview)
        except msgspec.DecodeError as exc:
            return none(f"deriving the preview gave no answer: {exc}")


def failure(returncode: int | None, stderr: bytes) -> str:
    """Why a child ended badly, in one line."""
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        hint = {"SIGXCPU": " (CPU time limit)", "SIGKILL": " (killed)", "SIGSEGV": " (a decoder crashed)"}
        return f"the process ended by {name}{hint.get(name, '')}"
    lines = stderr.decode(errors="replace").strip().splitlines()
    return f"exit status {returncode}" + (f": {lines[-1][:300]}" if lines else "")


async def _kill(child: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        child.kill()
    with contextlib.suppress(Exception):
        await child.wait()


def _child(cpu_s: int, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    warm()
    path, name = msgspec.msgpack.decode(sys.stdin.buffer.read(), type=tuple[str, str])
    try:
        preview = derive(Path(path), name)
    except MemoryError:
        preview = none(f"deriving the preview needed more than {memory_bytes:,} bytes of memory")
    except Exception as exc:  # a decoder's own failure is a reason, not a crash
        preview = failed(exc)
    sys.stdout.buffer.write(msgspec.msgpack.encode(preview))


if __name__ == "__main__":
    _child(int(sys.argv[1]), int(sys.argv[2]))
