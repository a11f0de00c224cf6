"""The process sandbox: bubblewrap (new namespaces, read-only host, no network unless allowed, a private
workspace and /tmp) or, only when the operator asks for it, a plain unsandboxed subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from pathlib import Path, PurePosixPath

from xrunner.contracts.spec import ProcessWorkload, Sandbox
from xrunner.worker.sandbox import Launch, SandboxError

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
    """A started process group; `signal_all` reaches every process the job started."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        self.stdout, self.stderr = proc.stdout, proc.stderr

    async def wait(self) -> int:
        return await self.proc.wait()

    def signal_all(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


class ProcessSandbox:
    """Runs `process` workloads; `name` is what `job.started` records (`process` or, unsandboxed, `none`)."""

    def __init__(self, mode: str, allow_network: bool = False) -> None:
        bwrap = shutil.which("bwrap")
        if mode == "bwrap" and bwrap is None:
            raise RuntimeError("XR_WORKER_SANDBOX=bwrap but bubblewrap (bwrap) is not installed")
        self.bwrap = bwrap if mode in ("auto", "bwrap") else None
        self.name: Sandbox = "process" if self.bwrap else "none"
        self.allow_network = allow_network

    async def start(self, launch: Launch) -> ProcessRun:
        workload = launch.spec.workload
        if not isinstance(workload, ProcessWorkload):
            raise SandboxError("this sandbox runs process workloads only")
        cwd = _inside(workload.cwd)
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
            workdir, child_env = None, {"PATH": JOB_PATH}
        else:
            env.setdefault("HOME", str(launch.workspace))
            argv, workdir, child_env = list(workload.argv), str(launch.workspace / cwd), env
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if workload.stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=workdir,
                env=child_env,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise SandboxError(f"cannot start {workload.argv[0]!r}: {exc.strerror or exc}") from exc
        if workload.stdin and proc.stdin is not None:
            proc.stdin.write(workload.stdin.encode())
            proc.stdin.close()
        return ProcessRun(proc)

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
