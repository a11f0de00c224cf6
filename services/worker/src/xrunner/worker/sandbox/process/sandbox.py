"""The process sandbox: bubblewrap (new namespaces, read-only host, no network unless allowed, a private
workspace and /tmp) or, only when the operator asks for it, a plain unsandboxed subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import socket
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import structlog

from xrunner.contracts.spec import ProcessWorkload, Sandbox, is_interactive
from xrunner.worker.sandbox import STDIN_BACKLOG, Launch, SandboxError
from xrunner.worker.sandbox.limits import Limits, RLimits, rlimits
from xrunner.worker.sandbox.process.cgroups import CgroupV1, JobCgroup
from xrunner.worker.sandbox.process.spawn import (
    Stdio,
    check_executable,
    descendants,
    exited,
    go_ahead,
    spawn_blocked,
    spawn_held,
)
from xrunner.worker.sandbox.process.terminal import EOT, Terminal
from xrunner.worker.sandbox.process.warm import WarmShells, command_line

log = structlog.get_logger()

JOB_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
_ETC = (
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
    "ssl",
    "ca-certificates",
    "mime.types",
    "hosts",
)
SANDBOX_HOME = "/workspace"


def _ended() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_eof()
    return reader


class ProcessRun:
    """A started job; `signal_all` reaches every process it started, even ones that left its session."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        cgroup: JobCgroup | None,
        ns_init: int | None,
        workspace: Path,
        terminal: Terminal | None = None,
    ) -> None:
        self.proc, self.cgroup, self.ns_init, self.workspace = proc, cgroup, ns_init, workspace
        self.terminal = terminal
        self.on_end: Callable[[], None] | None = None  # once, when `wait` has the job's exit status
        self.stdin: asyncio.WriteTransport | None  # an interactive job's stdin, until the job ends
        if terminal is not None:
            self.stdout, self.stderr, self.stdin = terminal.output, _ended(), terminal.input
        else:
            assert proc.stdout is not None and proc.stderr is not None
            self.stdout, self.stderr = proc.stdout, proc.stderr
            self.stdin = proc.stdin.transport if proc.stdin is not None and not proc.stdin.is_closing() else None

    def write_stdin(self, data: bytes) -> bool:
        """Feed an interactive job's stdin. False when `data` was dropped because the job left `STDIN_BACKLOG`
        bytes unread (the runner reports that); ignored (True) for other jobs or once stdin is closed."""
        stdin = self.stdin
        if stdin is None or stdin.is_closing():
            return True
        if stdin.get_write_buffer_size() + len(data) > STDIN_BACKLOG:
            return False
        stdin.write(data)
        return True

    def close_stdin(self) -> None:
        """End an interactive job's stdin; a terminal's is ended as a person ends it, by typing EOT (^D)."""
        if self.terminal is not None:
            self.write_stdin(EOT)
        elif self.stdin is not None:
            self.stdin.close()  # after what is still buffered

    def resize(self, rows: int, cols: int) -> None:
        if self.terminal is not None:
            self.terminal.resize(rows, cols)

    async def wait(self) -> int:
        """The job's exit status, once its leader exited and nothing of it is left: the rest of its cgroups, or
        else of its process group, is killed then (which also closes output pipes a straggler held)."""
        try:
            return await self._ended()
        finally:
            on_end, self.on_end = self.on_end, None
            if on_end is not None:
                on_end()

    async def _ended(self) -> int:
        await exited(self.proc)
        if self.cgroup is not None:
            await self.cgroup.remove()
        elif self.ns_init is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, KILL)
        if self.stdin is not None and not self.stdin.is_closing():  # input left unread is dropped (asyncio's
            self.stdin.abort()  # wait() waits for the pipe to close)
        return await self.proc.wait()

    def signal_all(self, sig: int) -> None:
        """A polite signal spares bubblewrap itself, whose death would SIGKILL the job before it could react."""
        spare = frozenset({self.proc.pid}) if self.ns_init is not None and sig != KILL else frozenset[int]()
        if self.cgroup is not None and not self.cgroup.removed:
            self.cgroup.signal(sig, spare)
        elif spare:
            for pid in descendants(self.ns_init or 0):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        if not spare:  # in bubblewrap, killing its pid namespace's init (via --die-with-parent) kills the rest
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)


class ProcessSandbox:
    """Runs `process` workloads; `name` is what `job.started` records (`process` or, unsandboxed, `none`)."""

    def __init__(
        self,
        mode: str,
        allow_network: bool = False,
        *,
        worker_id: str = "",
        max_pids: int = 512,
        warm_shells: int = 0,
        home: Path | None = None,
        workspaces: Path | None = None,
    ) -> None:
        """`warm_shells` keeps that many shells started and in spare cgroups ahead of jobs (`warm.py`), in `home`; in
        bubblewrap each in a sandbox of its own around a spare workspace made in `workspaces` (default: `home`)."""
        bwrap = shutil.which("bwrap")
        if mode == "bwrap" and bwrap is None:
            raise RuntimeError("the process sandbox needs bubblewrap: install it (Debian: apt-get install bubblewrap), "
                               "or set XR_WORKER_SANDBOX=none to run jobs unsandboxed (each says `sandbox: none`)")
        self.bwrap = bwrap if mode == "bwrap" else None
        self.name: Sandbox = "process" if self.bwrap else "none"
        self.allow_network, self.max_pids = allow_network, max_pids
        # A tty job in bubblewrap is not its session's leader: util-linux setsid makes it one, with the terminal
        # as its controlling terminal (without it the job still gets the terminal, but no job control or SIGWINCH).
        setsid = shutil.which("setsid", path=JOB_PATH)
        self.ctty = [setsid, "--wait", "--ctty"] if setsid else []
        if self.bwrap and not setsid:
            log.warning("tty jobs get no controlling terminal: util-linux setsid is not installed")
        self.cgroups = CgroupV1(worker_id or f"{socket.gethostname()}-{os.getpid()}")
        stale = self.cgroups.cleanup_stale()
        sandboxing = (lambda workspace: self._bwrap_argv(workspace, ".", False, {"PATH": JOB_PATH})) if self.bwrap \
            else None
        self.warm = WarmShells(self.cgroups, warm_shells, (workspaces or home or Path("/")) if self.bwrap
                               else (home or Path("/")), sandboxing) if warm_shells > 0 else None
        self.running = 0  # jobs started and not yet ended
        log.info("process sandbox limits", sandbox=self.name, cgroup_v1=list(self.cgroups.controllers),
                 rlimits=self._rlimit_names(), stale_jobs_killed=stale)

    async def start(self, launch: Launch) -> ProcessRun:
        workload = launch.spec.workload
        if not isinstance(workload, ProcessWorkload):
            raise SandboxError("this sandbox runs process workloads only")
        cwd = _inside(workload.cwd)
        if not self.bwrap and not (launch.workspace / cwd).is_dir():  # (bubblewrap says so itself)
            raise SandboxError(f"cannot start {workload.argv[0]!r}: no directory {cwd!r} in the workspace")
        limits = Limits.of(launch.spec, self.max_pids)
        if not workload.tty and (warm := await self._start_warm(launch, workload, cwd, limits)) is not None:
            return warm
        try:
            cgroup = self.cgroups.create(launch.job_id, launch.attempt, limits)
        except OSError as exc:
            raise SandboxError(f"cannot create the job's cgroups: {exc}") from exc
        terminal = Terminal() if workload.tty else None
        try:
            proc, ns_init = await self._spawn(launch, workload, cwd, cgroup, self._rlimits(limits), terminal)
        except BaseException:
            if terminal is not None:
                terminal.close()
            if cgroup is not None:
                await cgroup.remove()
            raise
        if terminal is not None:
            await terminal.open(workload.stdin)
        return self._running(ProcessRun(proc, cgroup, ns_init, launch.workspace, terminal))

    async def _start_warm(
        self, launch: Launch, workload: ProcessWorkload, cwd: str, limits: Limits
    ) -> ProcessRun | None:
        """Start the job in a warm shell, already in a spare cgroup: it is renamed for the job and given its limits,
        then the shell gets the job's command. None (start it cold) when no shell is ready or the command cannot
        go through one; a bubblewrapped job needs cgroups for it (without them it is confined as it starts)."""
        if self.warm is None or (self.bwrap and not self.cgroups.controllers):
            return None
        shell, line = self.warm.take(), None  # first: under load none is ready, and a cold start builds its own command
        try:
            if shell is not None:
                line = self._command_line(launch, workload, cwd)
        finally:
            if shell is not None and line is None:  # the job starts cold (or not at all): the shell waits for another
                self.warm.put_back(shell)
        self.warm.count(warm=line is not None)
        if shell is None or line is None:
            return None
        try:
            if shell.workspace is not None:  # the sandbox's /workspace becomes the job's (empty) workspace
                os.rmdir(launch.workspace)
                shell.workspace = shell.workspace.rename(launch.workspace)
            if shell.cgroup is not None:
                shell.cgroup.assign(launch.job_id, launch.attempt, limits)
            go_ahead(shell.proc, shell.pid, line, Stdio(text=workload.stdin, keep_open=is_interactive(workload)),
                     self._rlimits(limits))
        except OSError as exc:
            await self.warm.drop(shell)
            with contextlib.suppress(OSError):  # the job's workspace is where the runner looks for it, as it made it
                launch.workspace.mkdir(exist_ok=True)
            raise SandboxError(f"cannot confine the job: {exc}") from exc
        return self._running(ProcessRun(shell.proc, shell.cgroup, shell.init, launch.workspace))

    def _command_line(self, launch: Launch, workload: ProcessWorkload, cwd: str) -> bytes | None:
        """What a warm shell evaluates to become the job, or None when it cannot carry the job (`command_line`). A
        warm sandbox was made without network, around an empty workspace: a job that asks for the network, or whose
        workspace has something in it (so its cwd may be elsewhere than its root), starts cold; so does one whose
        executable is not plainly on the PATH, so that bubblewrap itself says why it cannot run it, as always."""
        env = self._env(launch, workload)
        if self.bwrap:
            if (workload.network and self.allow_network) or cwd != "." or not _on_host(workload.argv[0]) \
                    or _has_entries(launch.workspace):
                return None
            return command_line(workload.argv, env, PurePosixPath(SANDBOX_HOME))
        check_executable(workload.argv[0], launch.workspace / cwd, env["PATH"])
        return command_line(workload.argv, env, launch.workspace / cwd)

    def _running(self, run: ProcessRun) -> ProcessRun:
        """Count the job among those running until its exit status is known (`settled` reads the count)."""
        self.running += 1

        def ended() -> None:
            self.running -= 1

        run.on_end = ended
        return run

    def _env(self, launch: Launch, workload: ProcessWorkload) -> dict[str, str]:
        env = {
            "PATH": JOB_PATH,
            "LANG": "C.UTF-8",
            "XR_JOB_ID": launch.job_id,
            "XR_ATTEMPT": str(launch.attempt),
            **workload.env,
        }
        env.setdefault("HOME", SANDBOX_HOME if self.bwrap else str(launch.workspace))
        return env

    async def _spawn(
        self,
        launch: Launch,
        workload: ProcessWorkload,
        cwd: str,
        cgroup: JobCgroup | None,
        rl: RLimits,
        terminal: Terminal | None,
    ) -> tuple[asyncio.subprocess.Process, int | None]:
        env = self._env(launch, workload)
        if terminal is not None:
            env.setdefault("TERM", "xterm-256color")  # what xterm.js, the usual attach client, understands
            stdio = Stdio(tty=terminal.slave)
        else:
            stdio = Stdio(text=workload.stdin, keep_open=is_interactive(workload))
        if self.bwrap:
            job = [*self.ctty, *workload.argv] if terminal is not None else workload.argv
            argv = [*self._bwrap_argv(launch.workspace, cwd, workload.network, env), "--", *job]
            return await spawn_blocked(argv, stdio, {"PATH": JOB_PATH}, cgroup, rl)
        proc = await spawn_held(list(workload.argv), stdio, launch.workspace / cwd, env, cgroup, rl)
        return proc, None

    def warm_up(self) -> None:
        """Start the warm shells (on the running loop), before the first job asks for one."""
        if self.warm is not None:
            self.warm.fill()

    def settled(self) -> None:
        """Replace the warm shells jobs took only now, and only when no job of this sandbox runs: started beside a
        running job, a new shell's spawn and move into a cgroup (which holds up every fork and exit on the host while
        the kernel waits for RCU) slowed that job by as much as a warm start saved (`bench/worker.py latency`), and
        under a steady load, where every shell is taken as soon as it is ready, a warm start saves nothing and costs
        a little more (the extra cgroup handling, the shell reading its line; `bench/cpu.py` could not tell the two
        apart on this machine, docs/benchmarks.md "Session 8"). A quiet worker is warm for its next job; a busy one
        starts its jobs cold, as before."""
        if self.running == 0:
            self.warm_up()

    async def close(self) -> None:
        if self.warm is not None:
            await self.warm.close()
        self.cgroups.release()

    def _rlimits(self, limits: Limits) -> RLimits:
        """rlimits stand in for the controllers this host does not let us use."""
        have = self.cgroups.controllers
        return rlimits(limits, memory="memory" not in have, pids="pids" not in have)

    def _rlimit_names(self) -> list[str]:
        names = {resource.RLIMIT_CPU: "cpu", resource.RLIMIT_AS: "as", resource.RLIMIT_NPROC: "nproc"}
        chosen = self._rlimits(Limits(memory_bytes=0, max_pids=0, cpu_millis=0, cpu_seconds=0))
        return [names[r] for r in chosen if r in names]

    def _bwrap_argv(self, workspace: Path, cwd: str, network: bool, env: dict[str, str]) -> list[str]:
        assert self.bwrap is not None
        argv = [
            self.bwrap,
            "--die-with-parent",
            "--new-session",
            "--unshare-all",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--hostname",
            "xrunner",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for name in ("bin", "sbin", "lib", "lib32", "lib64"):
            host = Path("/") / name
            if host.is_symlink():
                argv += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                argv += ["--ro-bind", str(host), f"/{name}"]
        for name in _ETC:
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        if network and self.allow_network:
            argv += ["--share-net", "--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]
        argv += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--bind",
            str(workspace),
            SANDBOX_HOME,
            "--remount-ro",
            "/",
            "--chdir",
            str(PurePosixPath(SANDBOX_HOME) / cwd),
            "--clearenv",
        ]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        return argv


def _on_host(executable: str) -> bool:
    """Whether the sandbox finds `executable` where the host does: by name on the PATH, or an absolute path in what
    the sandbox binds read-only from the host (/usr and its links)."""
    if "/" not in executable:
        return shutil.which(executable, path=JOB_PATH) is not None
    path = PurePosixPath(executable)
    return path.is_absolute() and path.parts[1] in ("usr", "bin", "sbin") and ".." not in path.parts \
        and os.access(executable, os.X_OK) and os.path.isfile(executable)


def _has_entries(directory: Path) -> bool:
    with os.scandir(directory) as entries:
        return next(entries, None) is not None


def _inside(cwd: str | None) -> str:
    """A job's cwd is relative to its workspace and may not leave it."""
    if not cwd:
        return "."
    path = PurePosixPath(cwd)
    if path.is_absolute() or ".." in path.parts:
        raise SandboxError(f"cwd must be a relative path inside the workspace, got {cwd!r}")
    return str(path)


KILL = signal.SIGKILL
