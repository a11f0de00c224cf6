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
from pathlib import Path, PurePosixPath

import structlog

from xrunner.contracts.spec import ProcessWorkload, Sandbox
from xrunner.worker.sandbox import Launch, SandboxError
from xrunner.worker.sandbox.cgroups import CgroupV1, JobCgroup
from xrunner.worker.sandbox.limits import Limits, RLimits, rlimits
from xrunner.worker.sandbox.spawn import descendants, exited, spawn_blocked, spawn_held

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


class ProcessRun:
    """A started job; `signal_all` reaches every process it started, even ones that left its session."""

    def __init__(
        self, proc: asyncio.subprocess.Process, cgroup: JobCgroup | None, ns_init: int | None, workspace: Path
    ) -> None:
        self.proc, self.cgroup, self.ns_init, self.workspace = proc, cgroup, ns_init, workspace
        assert proc.stdout is not None and proc.stderr is not None
        self.stdout, self.stderr = proc.stdout, proc.stderr

    def write_stdin(self, data: bytes) -> None:
        pass

    def close_stdin(self) -> None:
        pass

    def resize(self, rows: int, cols: int) -> None:
        pass

    async def wait(self) -> int:
        """The job's exit status, once its leader exited and nothing of it is left: the rest of its cgroups, or
        else of its process group, is killed then (which also closes output pipes a straggler held)."""
        await exited(self.proc)
        if self.cgroup is not None:
            await self.cgroup.remove()
        elif self.ns_init is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, KILL)
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

    def __init__(self, mode: str, allow_network: bool = False, *, worker_id: str = "", max_pids: int = 512) -> None:
        bwrap = shutil.which("bwrap")
        if mode == "bwrap" and bwrap is None:
            raise RuntimeError("XR_WORKER_SANDBOX=bwrap but bubblewrap (bwrap) is not installed")
        self.bwrap = bwrap if mode in ("auto", "bwrap") else None
        self.name: Sandbox = "process" if self.bwrap else "none"
        self.allow_network, self.max_pids = allow_network, max_pids
        self.cgroups = CgroupV1(worker_id or f"{socket.gethostname()}-{os.getpid()}")
        stale = self.cgroups.cleanup_stale()
        log.info("process sandbox limits", sandbox=self.name, cgroup_v1=list(self.cgroups.controllers),
                 rlimits=self._rlimit_names(), stale_jobs_killed=stale)

    async def start(self, launch: Launch) -> ProcessRun:
        workload = launch.spec.workload
        if not isinstance(workload, ProcessWorkload):
            raise SandboxError("this sandbox runs process workloads only")
        cwd = _inside(workload.cwd)
        limits = Limits.of(launch.spec, self.max_pids)
        try:
            cgroup = self.cgroups.create(launch.job_id, launch.attempt, limits)
        except OSError as exc:
            raise SandboxError(f"cannot create the job's cgroups: {exc}") from exc
        try:
            proc, ns_init = await self._spawn(launch, workload, cwd, cgroup, self._rlimits(limits))
        except BaseException:
            if cgroup is not None:
                await cgroup.remove()
            raise
        return ProcessRun(proc, cgroup, ns_init, launch.workspace)

    async def _spawn(
        self, launch: Launch, workload: ProcessWorkload, cwd: str, cgroup: JobCgroup | None, rl: RLimits
    ) -> tuple[asyncio.subprocess.Process, int | None]:
        env = {
            "PATH": JOB_PATH,
            "LANG": "C.UTF-8",
            "XR_JOB_ID": launch.job_id,
            "XR_ATTEMPT": str(launch.attempt),
            **workload.env,
        }
        if self.bwrap:
            env.setdefault("HOME", SANDBOX_HOME)
            argv = [*self._bwrap_argv(launch.workspace, cwd, workload.network, env), "--", *workload.argv]
            return await spawn_blocked(argv, workload.stdin, {"PATH": JOB_PATH}, cgroup, rl)
        env.setdefault("HOME", str(launch.workspace))
        proc = await spawn_held(list(workload.argv), workload.stdin, launch.workspace / cwd, env, cgroup, rl)
        return proc, None

    async def close(self) -> None:
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


def _inside(cwd: str | None) -> str:
    """A job's cwd is relative to its workspace and may not leave it."""
    if not cwd:
        return "."
    path = PurePosixPath(cwd)
    if path.is_absolute() or ".." in path.parts:
        raise SandboxError(f"cwd must be a relative path inside the workspace, got {cwd!r}")
    return str(path)


TERM, KILL = signal.SIGTERM, signal.SIGKILL
