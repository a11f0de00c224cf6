"""Warm shells: a few `/bin/sh` processes started ahead of any job and already moved into a spare job cgroup, each
waiting for one line on stdin — the job's environment, directory and command, shell-quoted — that it evaluates into
an `exec` of the job (or of bubblewrap around it). Starting a process and moving it into its cgroups is most of what
a short job's start costs (on cgroup v1 the first move waits out an RCU grace period: ~4.6 ms p50 here, see
docs/benchmarks.md); a warm shell pays both before the job arrives. Each shell serves one job; the pool refills in
the background when the sandbox says so (`ProcessSandbox.settled`), and a job that finds none ready starts the cold
way (`spawn.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from prometheus_client import Counter

from xrunner.worker.sandbox.process.cgroups import CgroupV1, JobCgroup
from xrunner.worker.sandbox.process.spawn import Process, spawn

log = structlog.get_logger()

WARM_SHELLS = Counter("xrunner_worker_warm_shells_total", "Process jobs by how they started", ["start"])
# `nl` lets a quoted word carry a newline while the whole command stays on the one line `read` takes.
_WAIT = 'nl="\n"; IFS= read -r c || exit 125; eval "$c"'
# Names a shell gives a meaning of its own (an `export` of them fails or changes the shell, not just the job's env).
_SHELL_OWN = frozenset({"OPTIND", "IFS", "PPID", "LINENO", "ENV", "CDPATH", "OLDPWD", "PWD", "PS1", "PS2", "PS4"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_LINE = 16_384  # `read` takes the line a byte at a time: a longer one starts cold


def word(text: str) -> str:
    """`text` as one shell word, on one line."""
    return "'" + text.replace("'", "'\\''").replace("\n", "'\"$nl\"'") + "'"


def command_line(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None) -> bytes | None:
    """The line that turns a warm shell into `argv` with exactly `env` in `cwd`, or None when a shell cannot carry
    it faithfully (a NUL byte, a name the shell treats as its own, an argv[0] `exec` would read as an option, or a
    line too long to read quickly): that job starts cold."""
    texts = [*argv, *env, *env.values(), str(cwd or "")]
    if not argv or argv[0].startswith("-") or any("\0" in t for t in texts):
        return None
    if any(not _NAME.fullmatch(name) or name in _SHELL_OWN for name in env):
        return None
    parts = [f"export {' '.join(f'{name}={word(value)}' for name, value in env.items())}"] if env else []
    if cwd is not None:
        parts.append(f"cd -- {word(str(cwd))} || exit 125; unset OLDPWD")
    parts.append("exec " + " ".join(word(a) for a in argv))
    line = "; ".join(parts).encode() + b"\n"
    return line if len(line) <= MAX_LINE else None


@dataclass
class WarmShell:
    proc: Process
    cgroup: JobCgroup | None


class WarmShells:
    """Keeps `size` warm shells, each in a spare cgroup of `cgroups` (when it has controllers), started in `home`."""

    def __init__(self, cgroups: CgroupV1, size: int, home: Path) -> None:
        self.cgroups, self.size, self.home = cgroups, size, home
        self.ready: deque[WarmShell] = deque()
        self.starting = 0
        self.closed = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.failures = 0  # starts that failed in a row: after three, the pool stops refilling by itself

    def fill(self) -> None:
        """Start shells in the background until `size` are ready or starting."""
        while not self.closed and len(self.ready) + self.starting < self.size and self.failures < 3:
            self.starting += 1
            task = asyncio.get_running_loop().create_task(self._start_one())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def take(self) -> WarmShell | None:
        """A ready shell that is still alive, or None. The pool does not refill now (see `ProcessSandbox.settled`)."""
        shell = None
        while self.ready and shell is None:
            candidate = self.ready.popleft()
            if candidate.proc.returncode is None:
                shell = candidate
            else:
                self._discard(candidate)
        if shell is None:  # after failures, one more try per job that found none
            self.failures = min(self.failures, 2)
        return shell

    def put_back(self, shell: WarmShell) -> None:
        """A shell taken for a job that starts cold after all: first in line for the next one."""
        self.ready.appendleft(shell)

    @staticmethod
    def count(warm: bool) -> None:
        WARM_SHELLS.labels("warm" if warm else "cold").inc()

    async def _start_one(self) -> None:
        shell = None
        try:
            proc = await spawn(["/bin/sh", "-c", _WAIT, "xrunner-job"], asyncio.subprocess.PIPE, self.home, {})
            shell = WarmShell(proc, None)
            shell.cgroup = self.cgroups.spare()
            if shell.cgroup is not None:  # in a thread: the move waits for the kernel (RCU), not on the loop
                await asyncio.to_thread(shell.cgroup.add, proc.pid)
        except Exception as exc:  # the job that comes starts cold; so do the next ones until one is asked for again
            self.failures += 1
            log.warning("a warm shell could not be started", error=repr(exc))
            if shell is not None:
                await self.drop(shell)
            return
        finally:
            self.starting -= 1
        self.failures = 0
        if self.closed:
            await self.drop(shell)
        else:
            self.ready.append(shell)

    def _discard(self, shell: WarmShell) -> None:
        task = asyncio.get_running_loop().create_task(self.drop(shell))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drop(self, shell: WarmShell) -> None:
        """Kill a shell that will serve no job, and remove its cgroup."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.proc.pid, signal.SIGKILL)
        await shell.proc.wait()
        if shell.cgroup is not None:
            await shell.cgroup.remove()

    async def close(self) -> None:
        """Kill every shell not handed out and remove its cgroup (before the worker releases its cgroups)."""
        self.closed = True
        await asyncio.gather(*self.tasks, return_exceptions=True)  # a start in flight drops its own shell
        while self.ready:
            await self.drop(self.ready.popleft())
