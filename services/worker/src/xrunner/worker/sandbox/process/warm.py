"""Warm shells: a few `/bin/sh` processes started ahead of any job and already moved into a spare job cgroup, each
waiting for one line on stdin — the job's environment, directory and command, shell-quoted — that it evaluates into
an `exec` of the job. Starting a process and moving it into its cgroups is most of what a short job's start costs
(on cgroup v1 the first move waits out an RCU grace period: ~4.6 ms p50 here, see docs/benchmarks.md); a warm shell
pays both before the job arrives. In bubblewrap the shell waits inside a sandbox made ahead too (its namespaces, its
mounts, a spare workspace bound at /workspace), which the job's start renames to the job's own workspace: the
sandbox's setup, ~5 to 8 ms here, is paid before the job arrives as well. Each shell serves one job; the pool refills in
the background when the sandbox says so (`ProcessSandbox.settled`), and a job that finds none ready starts the cold
way (`spawn.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import structlog
from prometheus_client import Counter

from xrunner.worker.sandbox.process.cgroups import CgroupV1, JobCgroup
from xrunner.worker.sandbox.process.spawn import Process, Stdio, children, spawn, spawn_blocked

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


def command_line(argv: Sequence[str], env: Mapping[str, str], cwd: Path | PurePosixPath | None) -> bytes | None:
    """The line that turns a warm shell into `argv` with exactly `env` in `cwd`, or None when a shell cannot carry
    it faithfully (a NUL byte, a name the shell treats as its own, an argv[0] `exec` would read as an option, or a
    line too long to read quickly): that job starts cold. The job gets the shell's `PWD`, as a cold start's shell
    (or bubblewrap's `--chdir`) gives it."""
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
    proc: Process  # the shell, or bubblewrap around it
    cgroup: JobCgroup | None
    pid: int = 0  # the shell, which becomes the job (in a sandbox: its init's child)
    init: int | None = None  # the sandbox's init (bubblewrap)
    workspace: Path | None = None  # the spare workspace bound at the sandbox's /workspace (bubblewrap)


Sandboxing = Callable[[Path], list[str]]  # bubblewrap's argv around a shell whose workspace is that directory


class WarmShells:
    """Keeps `size` warm shells, each in a spare cgroup of `cgroups` (when it has controllers), started in `home`;
    with `sandboxing`, each in a sandbox of its own around a spare workspace made in `home`."""

    def __init__(self, cgroups: CgroupV1, size: int, home: Path, sandboxing: Sandboxing | None = None) -> None:
        self.cgroups, self.size, self.home, self.sandboxing = cgroups, size, home, sandboxing
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
            shell = await (self._sandboxed() if self.sandboxing is not None else self._plain())
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

    async def _plain(self) -> WarmShell:
        proc = await spawn(["/bin/sh", "-c", _WAIT, "xrunner-job"], asyncio.subprocess.PIPE, self.home, {})
        shell = WarmShell(proc, self.cgroups.spare(), proc.pid)
        try:
            if shell.cgroup is not None:  # in a thread: the move waits for the kernel (RCU), not on the loop
                await asyncio.to_thread(shell.cgroup.add, proc.pid)
        except BaseException:
            await self.drop(shell)
            raise
        return shell

    async def _sandboxed(self) -> WarmShell:
        """bubblewrap held after it made the sandbox, moved (in a thread) into a spare cgroup with its init, then let
        go: the init's first child, the shell, is in the cgroup from its fork on."""
        assert self.sandboxing is not None
        workspace = self.home / f"warm-{uuid.uuid4().hex}"
        workspace.mkdir(parents=True)
        cgroup = self.cgroups.spare()
        try:
            argv = [*self.sandboxing(workspace), "--", "/bin/sh", "-c", _WAIT, "xrunner-job"]
            proc, init = await spawn_blocked(argv, Stdio(keep_open=True), {}, cgroup, {}, off_loop=True)
        except BaseException:
            if cgroup is not None:
                await cgroup.remove()
            shutil.rmtree(workspace, ignore_errors=True)
            raise
        shell = WarmShell(proc, cgroup, 0, init, workspace)
        try:
            if init is None:
                raise OSError("bubblewrap ended before it made the sandbox")
            shell.pid = await _first_child(init)
        except BaseException:
            await self.drop(shell)
            raise
        return shell

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
        if shell.workspace is not None:
            shutil.rmtree(shell.workspace, ignore_errors=True)

    async def close(self) -> None:
        """Kill every shell not handed out and remove its cgroup (before the worker releases its cgroups)."""
        self.closed = True
        await asyncio.gather(*self.tasks, return_exceptions=True)  # a start in flight drops its own shell
        while self.ready:
            await self.drop(self.ready.popleft())


async def _first_child(pid: int, deadline_s: float = 5.0) -> int:
    """The first child `pid` forks (a sandbox's init forks the shell as soon as it is let go)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline_s
    while not (found := children(pid)):
        if loop.time() > until:
            raise OSError(f"the sandbox's init {pid} started no shell")
        await asyncio.sleep(0.001)
    return found[0]
