"""Starting a job's first process so that it is inside its cgroups and rlimits before it can fork."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from xrunner.worker.sandbox import SandboxError
from xrunner.worker.sandbox.limits import RLimits, apply_to
from xrunner.worker.sandbox.process.cgroups import JobCgroup

Process = asyncio.subprocess.Process
PIPE, DEVNULL = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL


# Waits for the worker's go-ahead line on stdin (no fork before it), then becomes the job.
_HOLD = 'IFS= read -r _ || exit 125; exec "$@"'
# The same for a tty job, whose stdin then becomes its terminal ($1), reopened by the session leader so that it is
# the job's controlling terminal (the go-ahead cannot come through the terminal: it would be echoed).
_HOLD_TTY = 'IFS= read -r _ || exit 125; t=$1; shift; exec "$@" 0<>"$t"'


@dataclass(frozen=True)
class Stdio:
    """How a job's standard streams are wired: `text` first on stdin, which stays open when `keep_open`
    (an interactive job), or, when `tty` (a pseudo-terminal's slave) is set, that terminal for all three."""

    text: str | None = None
    keep_open: bool = False
    tty: int | None = None

    @property
    def stdin(self) -> int:
        """The job's stdin when it is started directly (not behind the go-ahead shell)."""
        return self.tty if self.tty is not None else PIPE if self.text or self.keep_open else DEVNULL

    @property
    def output(self) -> int:
        return PIPE if self.tty is None else self.tty


async def spawn(
    argv: list[str],
    stdin: int,
    cwd: Path | None,
    env: dict[str, str],
    pass_fds: tuple[int, ...] = (),
    output: int = PIPE,
) -> Process:
    """A new session with piped output, or output to `output` (vfork-fast: no preexec hook)."""
    try:
        return await asyncio.create_subprocess_exec(
            *argv, stdin=stdin, stdout=output, stderr=output, cwd=cwd, env=env, start_new_session=True,
            pass_fds=pass_fds,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        raise SandboxError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc


async def spawn_held(
    argv: list[str], stdio: Stdio, cwd: Path, env: dict[str, str], cgroup: JobCgroup | None, limits: RLimits
) -> Process:
    """Start a shell that waits on stdin for a go-ahead, put it in the cgroups and rlimits, then let it exec
    the job: no fork of the job escapes, and no preexec hook turns the spawn's vfork into a full fork."""
    check_executable(argv[0], cwd, env.get("PATH", ""))
    hold = ["/bin/sh", "-c", _HOLD, "xrunner-job"] if stdio.tty is None else \
        ["/bin/sh", "-c", _HOLD_TTY, "xrunner-job", os.ttyname(stdio.tty)]
    proc = await spawn([*hold, *argv], PIPE, cwd, env, output=stdio.output)
    assert proc.stdin is not None
    try:
        _confine((proc.pid,), cgroup, proc.pid, limits)
    except OSError as exc:
        await _abort(proc)
        raise SandboxError(f"cannot confine the job: {exc}") from exc
    proc.stdin.write(b"\n" if stdio.tty is not None else b"\n" + (stdio.text or "").encode())
    if not stdio.keep_open or stdio.tty is not None:
        proc.stdin.close()
    return proc


def go_ahead(proc: Process, pid: int, line: bytes, stdio: Stdio, limits: RLimits) -> None:
    """Let a warm shell (`warm.py`; process `pid`, `proc` itself or inside `proc`'s sandbox), already in the job's
    cgroups, become the job: its rlimits, then its command line and the job's stdin text (stdin then stays open
    only for an interactive job)."""
    apply_to(pid, limits)
    assert proc.stdin is not None
    proc.stdin.write(line + (stdio.text or "").encode())
    if not stdio.keep_open:
        proc.stdin.close()


def check_executable(name: str, cwd: Path, path: str) -> None:
    """Fail the start, as a direct exec would, when the job's executable is missing or not executable."""
    found = (cwd / name).is_file() and os.access(cwd / name, os.X_OK) if "/" in name else shutil.which(name, path=path)
    if not found:
        raise SandboxError(f"cannot start {name!r}: no such executable (PATH={path})")


async def _abort(proc: Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


async def spawn_blocked(
    bwrap_argv: list[str], stdio: Stdio, env: dict[str, str], cgroup: JobCgroup | None, limits: RLimits,
    *, off_loop: bool = False,
) -> tuple[Process, int | None]:
    """Start bubblewrap held at `--block-fd` (after it cloned the sandbox's init, before it runs the job), put
    both in the cgroups and limit the init, then let it go: no fork of the job escapes, and no preexec hook
    slows the spawn. `off_loop`: move them in a thread (the move waits for the kernel; a warm sandbox's start
    does not hold up the loop for it). Returns the process and the sandbox init's pid (None if bubblewrap failed
    early)."""
    info_r, info_w = os.pipe()
    block_r, block_w = os.pipe()
    argv = [bwrap_argv[0], "--info-fd", str(info_w), "--block-fd", str(block_r), *bwrap_argv[1:]]
    try:
        proc = await spawn(argv, stdio.stdin, None, env, pass_fds=(info_w, block_r), output=stdio.output)
    except BaseException:
        for fd in (info_r, block_w):
            os.close(fd)
        raise
    finally:
        os.close(info_w)
        os.close(block_r)
    try:
        init = _child_pid(await asyncio.wait_for(_read_info(info_r), 10.0))
        if init is not None and off_loop:
            await asyncio.to_thread(_confine, (proc.pid, init), cgroup, init, limits)
        elif init is not None:
            _confine((proc.pid, init), cgroup, init, limits)
    except (OSError, TimeoutError, ValueError) as exc:
        await _abort(proc)
        raise SandboxError(f"cannot confine the job: {exc}") from exc
    finally:
        os.close(info_r)
        with contextlib.suppress(OSError):
            os.write(block_w, b"go")
        os.close(block_w)
    if proc.stdin is not None:
        if stdio.text:
            proc.stdin.write(stdio.text.encode())
        if not stdio.keep_open:
            proc.stdin.close()
    return proc, init


def _confine(pids: tuple[int, ...], cgroup: JobCgroup | None, init: int, limits: RLimits) -> None:
    if cgroup is not None:
        for pid in pids:
            cgroup.add(pid)
    apply_to(init, limits)


def _child_pid(info: bytes) -> int | None:
    """bubblewrap's `--info-fd` JSON names the sandbox's first process (as this pid namespace sees it)."""
    if not info:
        return None
    pid = json.loads(info)["child-pid"]
    if not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"bad child-pid in {info!r}")
    return pid


async def _read_info(fd: int) -> bytes:
    """bubblewrap's info JSON, read until it closes (`}`) or the fd does (bubblewrap failed before cloning)."""
    data = b""
    while not data.endswith(b"}") and (chunk := await _read_once(fd)):
        data = (data + chunk).rstrip()
    return data


async def _read_once(fd: int) -> bytes:
    """One read once `fd` is readable, without blocking the loop."""
    await _readable(fd)
    return os.read(fd, 65_536)


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def exited(proc: Process) -> None:
    """Return once `proc` has exited, even while something it left behind holds its output pipes open
    (asyncio's `wait()` also waits for the pipes to close). A pidfd where the kernel has them, else polling."""
    if proc.returncode is not None:
        return
    try:
        fd = os.pidfd_open(proc.pid)
    except OSError:  # already reaped, or no pidfds here
        while proc.returncode is None:
            await asyncio.sleep(0.02)
        return
    try:
        await _readable(fd)
    finally:
        os.close(fd)


def children(pid: int) -> list[int]:
    """The live children of `pid` (any of its threads' forks); none when it is gone."""
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (needs /proc/<pid>/task/<tid>/children); inside a pid namespace orphans
    are adopted by its init, so from the init this is the whole sandbox."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                todo += children
    return found
