"""Probes of the process sandbox: what a hostile or careless job can and cannot do, in both of its modes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import wait_until, with_marker

from xrunner.contracts.spec import JobSpec, ProcessWorkload, Resources
from xrunner.worker.sandbox import Launch, SandboxError
from xrunner.worker.sandbox.process.cgroups import IDLE, ROOT, CgroupV1
from xrunner.worker.sandbox.process.sandbox import ProcessRun, ProcessSandbox
from xrunner.worker.settings import WorkerSettings

MODES = ["bwrap", "none"]
PYTHON = "/usr/bin/python3"  # Debian's, which bubblewrap's read-only /usr shows inside the sandbox


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def worker_id() -> str:
    return f"probe-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def marker() -> str:
    return f"xr-probe-{uuid.uuid4().hex}"


def sandbox(mode: str, worker_id: str, **kwargs: object) -> ProcessSandbox:
    """The real sandbox; bwrap mode raises (so the test fails, never skips) when bubblewrap is missing."""
    return ProcessSandbox(mode, worker_id=worker_id, max_pids=64, **kwargs)  # type: ignore[arg-type]


async def start(box: ProcessSandbox, workspace: Path, argv: list[str], **spec: object) -> ProcessRun:
    resources = spec.pop("resources", Resources())
    job = JobSpec(workload=ProcessWorkload(argv=argv, **spec), resources=resources, timeout_s=30)  # type: ignore[arg-type]
    return await box.start(Launch(f"job-{uuid.uuid4().hex[:8]}", 1, job, workspace))


async def run(box: ProcessSandbox, workspace: Path, argv: list[str], deadline_s: float = 20, **spec: object) -> Result:
    """Run a job to its end as the runner does: output read while waiting for the exit, whose cleanup ends what
    the job left behind (bounded: a job still running at the deadline is killed and the test fails)."""
    proc = await start(box, workspace, argv, **spec)
    try:
        out, err, code = await asyncio.wait_for(
            asyncio.gather(proc.stdout.read(), proc.stderr.read(), proc.wait()), deadline_s
        )
    finally:
        proc.signal_all(signal.SIGKILL)
        await proc.wait()
    return Result(code, out.decode(errors="replace"), err.decode(errors="replace"))


def exists(path: Path) -> bool:
    return path.exists()


def killed(code: int) -> int | None:
    """The signal that ended a job: a negative status for a plain child, 128+n as bubblewrap reports it."""
    return -code if code < 0 else code - 128 if code > 128 else None


@pytest.fixture(autouse=True)
def no_leftover_cgroups(worker_id: str) -> Iterator[None]:
    yield
    for controller in ("pids", "memory", "cpu"):
        base = ROOT / controller / "xrunner" / worker_id
        if base.is_dir():
            left = [d for d in base.iterdir() if d.is_dir()]
            assert [d.name for d in left if not d.name.startswith(IDLE)] == [], f"job cgroups left in {base}"
            for idle in left:  # emptied cgroups the sandbox kept for its next jobs
                assert (idle / "cgroup.procs").read_text() == "", f"a process left in {idle}"
                idle.rmdir()
            base.rmdir()


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[bool]]]:
    """A TCP port on 127.0.0.1 that records every connection it accepts."""
    accepted: list[bool] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(True)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], accepted
    server.close()
    await server.wait_closed()


def test_bubblewrap_is_installed_because_the_sandboxed_mode_must_be_tested(worker_id: str) -> None:
    assert sandbox("bwrap", worker_id).name == "process"


@pytest.mark.parametrize("mode", MODES)
async def test_a_fork_bomb_is_held_at_the_pids_limit_and_the_machine_stays_usable(
    mode: str, worker_id: str, tmp_path: Path, marker: str
) -> None:
    bomb = (
        "import os, time, sys\n"
        "n = 0\n"
        "for _ in range(2000):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60); os._exit(0)\n"
        "        n += 1\n"
        "    except OSError:\n"
        "        break\n"
        "print(n, flush=True)\n"
    )
    box = sandbox(mode, worker_id)
    result = await run(box, tmp_path, [PYTHON, "-c", bomb, marker])
    assert result.code == 0, result.err
    assert 0 < int(result.out) < 64
    assert with_marker(marker) == []
    assert (await run(box, tmp_path, ["echo", "still fine"])).out == "still fine\n"


@pytest.mark.parametrize("mode", MODES)
async def test_a_job_that_allocates_past_its_memory_limit_is_killed(mode: str, worker_id: str, tmp_path: Path) -> None:
    hog = "b = b'x' * (200 << 20); print('allocated', len(b))"
    result = await run(sandbox(mode, worker_id), tmp_path, [PYTHON, "-c", hog], resources=Resources(memory_mib=64))
    assert "allocated" not in result.out
    assert killed(result.code) == signal.SIGKILL or "MemoryError" in result.err


@pytest.mark.parametrize("network", [False, True], ids=["not asked", "asked but not allowed"])
async def test_a_sandboxed_job_cannot_connect_to_a_port_on_the_hosts_loopback(
    network: bool, worker_id: str, tmp_path: Path, listener: tuple[int, list[bool]]
) -> None:
    port, accepted = listener
    dial = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')"
    result = await run(sandbox("bwrap", worker_id), tmp_path, [PYTHON, "-c", dial], network=network)
    assert result.code != 0 and "connected" not in result.out
    assert accepted == []


async def test_a_job_gets_the_network_when_it_asks_and_the_operator_allows_it(
    worker_id: str, tmp_path: Path, listener: tuple[int, list[bool]]
) -> None:
    port, _ = listener
    dial = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')"
    result = await run(sandbox("bwrap", worker_id, allow_network=True), tmp_path, [PYTHON, "-c", dial], network=True)
    assert (result.code, result.out) == (0, "connected\n"), result.err


async def test_a_sandboxed_job_cannot_read_secrets_of_the_host_or_the_workers_home(
    worker_id: str, tmp_path: Path
) -> None:
    secret = Path.home() / f".xr-probe-{uuid.uuid4().hex}"
    secret.write_text("secret")
    try:
        for path in ("/etc/shadow", str(secret)):
            result = await run(sandbox("bwrap", worker_id), tmp_path, ["cat", path])
            assert result.code != 0 and "secret" not in result.out and "root:" not in result.out
    finally:
        secret.unlink()


async def test_a_sandboxed_job_writes_only_its_workspace_and_a_private_tmp(worker_id: str, tmp_path: Path) -> None:
    name = f"xr-probe-{uuid.uuid4().hex}"
    script = f"for d in /usr /etc /root /var/tmp /; do touch $d/{name} 2>/dev/null && echo wrote $d; done; " \
             f"touch /tmp/{name} out-{name} && echo ok"
    result = await run(sandbox("bwrap", worker_id), tmp_path, ["sh", "-c", script])
    assert result.out == "ok\n", result.out + result.err
    assert [exists(p) for p in (tmp_path / f"out-{name}", Path("/tmp") / name, Path("/usr") / name)] == [1, 0, 0]


@pytest.mark.parametrize("mode", MODES)
async def test_a_double_forked_setsid_child_dies_with_the_job_when_it_is_killed(
    mode: str, worker_id: str, tmp_path: Path, marker: str
) -> None:
    escapee = f'(setsid {PYTHON} -c "import time; time.sleep(300)" {marker} &) ; sleep 300'
    proc = await start(sandbox(mode, worker_id), tmp_path, ["sh", "-c", escapee])
    await wait_until(lambda: with_marker(marker))
    proc.signal_all(signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), 10)
    await wait_until(lambda: not with_marker(marker), 5)


@pytest.mark.parametrize("mode", MODES)
async def test_a_double_forked_setsid_child_dies_with_the_job_when_the_job_exits_by_itself(
    mode: str, worker_id: str, tmp_path: Path, marker: str
) -> None:
    escapee = f'(setsid {PYTHON} -c "import time; time.sleep(300)" {marker} &) ; sleep 0.5; exit 3'
    result = await run(sandbox(mode, worker_id), tmp_path, ["sh", "-c", escapee])
    assert result.code == 3
    await wait_until(lambda: not with_marker(marker), 5)


@pytest.mark.parametrize("mode", MODES)
async def test_a_polite_signal_reaches_the_job_so_it_can_clean_up(mode: str, worker_id: str, tmp_path: Path) -> None:
    trap = "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done"
    proc = await start(sandbox(mode, worker_id), tmp_path, ["sh", "-c", trap])
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"ready\n"
    proc.signal_all(signal.SIGTERM)
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"got TERM\n"
    assert await asyncio.wait_for(proc.wait(), 10) == 7


@pytest.mark.parametrize("mode", MODES)
async def test_a_cpu_spinner_is_killed_when_it_has_used_its_cpu_time(mode: str, worker_id: str, tmp_path: Path) -> None:
    box = sandbox(mode, worker_id)
    job = JobSpec(workload=ProcessWorkload(argv=[PYTHON, "-c", "while True: pass"]), timeout_s=1)
    proc = await box.start(Launch("spinner", 1, job, tmp_path))
    code = await asyncio.wait_for(proc.wait(), 60)  # CPU time, not wall time: a loaded machine stretches it
    assert killed(code) in (signal.SIGXCPU, signal.SIGKILL)


@pytest.mark.parametrize("mode", MODES)
async def test_a_restarted_worker_kills_the_jobs_its_previous_life_left_running(
    mode: str, worker_id: str, tmp_path: Path, marker: str
) -> None:
    orphan = await start(sandbox(mode, worker_id), tmp_path, [PYTHON, "-c", "import time; time.sleep(300)", marker])
    await wait_until(lambda: with_marker(marker))
    sandbox(mode, worker_id)  # the next life of the same worker
    await wait_until(lambda: not with_marker(marker), 5)
    await asyncio.wait_for(orphan.proc.wait(), 5)


@pytest.mark.parametrize("mode", MODES)
async def test_a_finished_jobs_cgroups_serve_the_next_job_with_its_own_limits_and_the_reaper_still_reaches_it(
    mode: str, worker_id: str, tmp_path: Path, marker: str
) -> None:
    box = sandbox(mode, worker_id)
    assert box.cgroups.controllers, "this machine has writable cgroup v1 controllers (root)"
    memory = ROOT / "memory" / "xrunner" / worker_id
    assert (await run(box, tmp_path, ["true"], resources=Resources(memory_mib=64))).code == 0
    [idle] = [d for d in memory.iterdir() if d.is_dir()]
    assert idle.name.startswith(IDLE), "the finished job's cgroup is kept, under an idle name"
    inode = idle.stat().st_ino
    job = await start(box, tmp_path, [PYTHON, "-c", "import time; time.sleep(300)", marker],
                      resources=Resources(memory_mib=128))
    [mine] = [d for d in memory.iterdir() if d.is_dir()]
    assert (mine.name.endswith("-1"), mine.stat().st_ino) == (True, inode), "the same cgroup, named for the job"
    assert int((mine / "memory.limit_in_bytes").read_text()) == 128 * 1024 * 1024
    await wait_until(lambda: with_marker(marker))
    assert CgroupV1(worker_id).signal_all(signal.SIGKILL) == 1  # what the reaper does when it fences the worker
    assert killed(await asyncio.wait_for(job.wait(), 10)) == signal.SIGKILL
    assert with_marker(marker) == []
    await box.close()
    assert not memory.exists()


def test_the_worker_says_which_limits_it_enforces_with_cgroups_and_which_with_rlimits(worker_id: str) -> None:
    box = sandbox("none", worker_id)
    if os.geteuid() == 0 and (ROOT / "pids" / "cgroup.procs").exists():
        assert set(box.cgroups.controllers) == {"pids", "memory", "cpu"}
    assert box._rlimit_names()[0] == "cpu"


def test_without_bubblewrap_the_worker_by_default_refuses_to_start_unless_asked_to_run_unsandboxed(
    worker_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap to be found
    with pytest.raises(RuntimeError, match=r"needs bubblewrap.*XR_WORKER_SANDBOX=none"):
        sandbox(WorkerSettings().sandbox, worker_id)
    assert sandbox("none", worker_id).name == "none"


@contextlib.asynccontextmanager
async def warm_sandbox(mode: str, worker_id: str, shells: int = 2) -> AsyncIterator[ProcessSandbox]:
    """A sandbox keeping `shells` warm shells, all of them ready; closed (shells and cgroups gone) at the end."""
    box = sandbox(mode, worker_id, warm_shells=shells, home=Path("/tmp"))
    box.warm_up()
    assert box.warm is not None
    await wait_until(lambda: len(box.warm.ready) == shells, what="the warm shells to start")
    try:
        yield box
    finally:
        await box.close()


def ready_pids(box: ProcessSandbox) -> set[int]:
    assert box.warm is not None
    return {shell.proc.pid for shell in box.warm.ready}


# What the job sees of itself, to compare a warm start with a cold one.
SELF = (
    "import json, os, sys; lim = [l for l in open('/proc/self/limits') if l.startswith('Max cpu time')]; "
    "print(json.dumps([sys.argv[1:], {k: v for k, v in os.environ.items() if k in "
    "('XR_ATTEMPT', 'HOME', 'PATH', 'LANG', 'ODD', 'OLDPWD', 'PWD')}, os.getcwd().rsplit('/', 1)[-1], "
    "sys.stdin.read(), lim]))"
)
ODD = "it's \"quoted\"\n$HOME `id` $(id) \\ \t;|&*? ~ -- ünï"


@pytest.mark.parametrize("mode", MODES)
async def test_a_job_started_in_a_warm_shell_gets_exactly_what_a_cold_start_gives_it(
    mode: str, worker_id: str, tmp_path: Path
) -> None:
    # A job's workspace is empty when it starts; here an unsandboxed one also starts in a directory made in it (a
    # warm sandbox is made around an empty workspace: a job's cwd can only be its root).
    if mode == "none":
        (tmp_path / "sub dir").mkdir()
    spec = {"cwd": "sub dir" if mode == "none" else None, "env": {"ODD": ODD}, "stdin": f"{ODD}\nmore"}
    cold = await run(sandbox(mode, worker_id), tmp_path, [PYTHON, "-c", SELF, ODD, "-x", ""], **spec)
    async with warm_sandbox(mode, worker_id) as box:
        shells = ready_pids(box)
        job = await start(box, tmp_path, [PYTHON, "-c", SELF, ODD, "-x", ""], **spec)
        assert job.proc.pid in shells, "the job ran in a warm shell"
        out, err, code = await asyncio.wait_for(asyncio.gather(job.stdout.read(), job.stderr.read(), job.wait()), 20)
    assert (code, err) == (0, b"")
    seen = json.loads(out)
    assert seen == json.loads(cold.out), "the same argv, environment, directory, stdin and cpu limit"
    assert seen[0] == [ODD, "-x", ""] and seen[1]["ODD"] == ODD and seen[2] == ("sub dir" if mode == "none" else
                                                                                  "workspace")
    assert "OLDPWD" not in seen[1] and seen[4], "no trace of the shell's own cd; the cpu rlimit applied"
    assert seen[1]["PWD"].endswith(seen[2]), "the shell's PWD, as the cold start's shell or bubblewrap's --chdir set it"


async def test_a_warm_sandbox_becomes_the_jobs_own_and_what_it_cannot_carry_starts_cold(
    worker_id: str, tmp_path: Path
) -> None:
    spares = tmp_path / "spares"
    box = sandbox("bwrap", worker_id, warm_shells=2, home=Path("/tmp"), workspaces=spares, allow_network=True)
    box.warm_up()
    try:
        assert box.warm is not None
        await wait_until(lambda: len(box.warm.ready) == 2, what="the warm sandboxes to start")  # type: ignore[union-attr]
        assert sorted(p.name[:5] for p in spares.iterdir()) == ["warm-", "warm-"], "one spare workspace each"
        workspace = tmp_path / "job"
        workspace.mkdir()
        shells = ready_pids(box)
        job = await start(box, workspace, ["sh", "-c", 'echo made > "$HOME/out.txt"; pwd'])
        assert job.proc.pid in shells, "an empty workspace, the default cwd and no network: started warm"
        assert (await job.stdout.read(), await job.wait()) == (b"/workspace\n", 0)
        assert (workspace / "out.txt").read_text() == "made\n", "what it wrote is in its own workspace on the host"
        assert len(list(spares.iterdir())) == 1, "the spare it took became the job's workspace"
        # What a sandbox made ahead cannot give a job: each starts cold, and runs as it always did.
        (workspace / "sub").mkdir()
        cold = {
            "a workspace with something in it": (workspace, ["ls"], {}),
            "a working directory": (workspace, ["pwd"], {"cwd": "sub"}),
            "the network": (tmp_path / "empty-1", ["true"], {"network": True}),
            "an executable outside /usr": (tmp_path / "empty-2", ["/workspace/x"], {}),
        }
        for why, (where, argv, spec) in cold.items():
            where.mkdir(exist_ok=True)
            before = ready_pids(box)
            started = await start(box, where, argv, **spec)
            assert started.proc.pid not in before, why
            await asyncio.wait_for(asyncio.gather(started.stdout.read(), started.stderr.read(), started.wait()), 20)
            assert ready_pids(box) == before, f"{why}: the warm sandbox waits for another job"
    finally:
        await box.close()
    assert list(spares.iterdir()) == [], "closing removes the spare workspaces with their sandboxes"


@pytest.mark.parametrize("mode", MODES)
async def test_a_job_in_a_warm_shell_is_held_to_its_own_cgroup_limits(
    mode: str, worker_id: str, tmp_path: Path, marker: str
) -> None:
    async with warm_sandbox(mode, worker_id) as box:
        hog = "b = b'x' * (200 << 20); print('allocated', len(b))"
        shells = ready_pids(box)
        job = await start(box, tmp_path, [PYTHON, "-c", hog], resources=Resources(memory_mib=64))
        assert job.proc.pid in shells and job.cgroup is not None
        assert [d.name for d in job.cgroup.dirs.values()] == [f"{job.cgroup.dirs['memory'].name}"] * 3
        assert not job.cgroup.idle_name(), "the spare cgroup is named for the job"
        assert int((job.cgroup.dirs["memory"] / "memory.limit_in_bytes").read_text()) == 64 << 20
        out, err, code = await asyncio.wait_for(asyncio.gather(job.stdout.read(), job.stderr.read(), job.wait()), 20)
        assert b"allocated" not in out
        assert killed(code) == signal.SIGKILL or b"MemoryError" in err
        assert len(box.warm.ready) == 1, "no refill while the job ran"  # type: ignore[union-attr]
        box.settled()  # what the runner calls once the attempt's outcome is stored
        await wait_until(lambda: len(box.warm.ready) == 2, what="the pool to refill")  # type: ignore[union-attr]
        escapee = f'(setsid {PYTHON} -c "import time; time.sleep(300)" {marker} &) ; sleep 0.2; exit 3'
        result = await run(box, tmp_path, ["sh", "-c", escapee])
        assert result.code == 3
        await wait_until(lambda: not with_marker(marker), 5)


async def test_a_command_a_shell_cannot_carry_starts_cold_and_dead_warm_shells_are_replaced(
    worker_id: str, tmp_path: Path
) -> None:
    async with warm_sandbox("none", worker_id) as box:
        shells = ready_pids(box)
        job = await start(box, tmp_path, ["sh", "-c", 'echo "${#1}"', "sh", "y" * 20_000])
        assert job.proc.pid not in shells, "a command too long to read quickly: started cold"
        assert (await job.stdout.read(), await job.wait()) == (b"20000\n", 0)
        assert CgroupV1(worker_id).signal_all(signal.SIGKILL) == 2  # the reaper's fence kills the shells too
        await wait_until(lambda: all(s.proc.returncode is not None for s in box.warm.ready))  # type: ignore[union-attr]
        assert (await run(box, tmp_path, ["echo", "still fine"])).out == "still fine\n"
        box.settled()
        await wait_until(lambda: len(ready_pids(box) - shells) == 2, what="fresh shells in place of the dead")


async def test_warm_shells_are_replaced_only_once_no_job_runs(worker_id: str, tmp_path: Path, marker: str) -> None:
    async with warm_sandbox("none", worker_id) as box:
        assert box.warm is not None
        long = await start(box, tmp_path, [PYTHON, "-c", "import time; time.sleep(300)", marker])
        assert (await run(box, tmp_path, ["true"])).code == 0
        box.settled()  # a job still runs: a refill now would compete with it
        assert (len(box.warm.ready), box.warm.starting) == (0, 0)
        long.signal_all(signal.SIGKILL)
        await asyncio.wait_for(long.wait(), 10)
        box.settled()
        await wait_until(lambda: len(box.warm.ready) == 2, what="the pool to refill once the worker is quiet")


@pytest.mark.parametrize("shells", [0, 2], ids=["cold", "warm"])
async def test_a_missing_working_directory_fails_the_start_with_the_same_reason_warm_or_cold(
    shells: int, worker_id: str, tmp_path: Path
) -> None:
    box = sandbox("none", worker_id, warm_shells=shells, home=Path("/tmp"))
    box.warm_up()
    try:
        with pytest.raises(SandboxError, match=r"cannot start 'true': no directory 'nowhere' in the workspace"):
            await start(box, tmp_path, ["true"], cwd="nowhere")
        assert box.running == 0
    finally:
        await box.close()
