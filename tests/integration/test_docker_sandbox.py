"""Probes of the docker sandbox against the real daemon and the local test image (infra/docker/build-test-image.sh):
what a hostile or careless container can and cannot do, cold and warm, and a docker job through the whole worker."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import docker
import msgspec
import pytest
from docker.errors import DockerException, NotFound
from integration.cluster import Cluster
from integration.test_sandbox import Result, listener, marker  # noqa: F401 (fixtures)
from integration.test_scheduler import all_terminal
from integration.test_worker import TENANT, history, submit
from prometheus_client import REGISTRY
from support import wait_until, with_marker

from xrunner.contracts import events as ev
from xrunner.contracts.spec import DockerWorkload, JobSpec, Resources
from xrunner.worker.sandbox import Launch, SandboxError
from xrunner.worker.sandbox.docker.engine import DockerRun
from xrunner.worker.sandbox.docker.sandbox import DockerSandbox, open_docker
from xrunner.worker.sandbox.docker.warm import parse_warm_images
from xrunner.worker.settings import WorkerSettings

IMAGE = "xrunner/busybox:test"
PATHS = ["cold", "warm"]
OpenBox = Callable[..., DockerSandbox]


@pytest.fixture(scope="session")
def daemon() -> Iterator[docker.APIClient]:
    """The real daemon and the test image; without them the tests fail (never skip), saying what is missing."""
    try:
        client = docker.APIClient(base_url="unix:///var/run/docker.sock", version="auto")
        client.inspect_image(IMAGE)
    except NotFound:
        pytest.fail(f"the docker test image {IMAGE} is missing: run infra/docker/build-test-image.sh")
    except DockerException as exc:
        pytest.fail(f"the docker daemon is not reachable ({exc}); `./dev test` installs and starts it")
    yield client
    client.close()


@pytest.fixture
def worker_id() -> str:
    return f"dprobe-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def boxes(daemon: docker.APIClient, worker_id: str, tmp_path: Path) -> AsyncIterator[OpenBox]:
    """Opens docker sandboxes of this test's worker; at the end closes them and checks no container is left."""
    opened: list[DockerSandbox] = []

    def open_box(**settings: object) -> DockerSandbox:
        defaults = {"worker_id": worker_id, "workspace_dir": str(tmp_path / "ws"), "max_pids": 64, "docker": "on"}
        box = open_docker(WorkerSettings(**{**defaults, **settings}), worker_id)  # type: ignore[arg-type]
        assert box is not None
        opened.append(box)
        return box

    yield open_box
    for box in opened:
        await box.close()
    assert containers(daemon, worker_id) == [], "containers left behind"


async def warmed(box: DockerSandbox, ready: int) -> DockerSandbox:
    await wait_until(lambda: len(box.pools[IMAGE].ready) == ready, 20, "the warm pool")
    return box


@pytest.fixture
async def warm_box(boxes: OpenBox) -> DockerSandbox:
    return await warmed(boxes(warm_images=f"{IMAGE}=2"), 2)


@pytest.fixture(params=PATHS)
async def box(request: pytest.FixtureRequest, boxes: OpenBox) -> DockerSandbox:
    """A sandbox whose jobs run cold, or warm (its pool has ready containers)."""
    return boxes() if request.param == "cold" else await warmed(boxes(warm_images=f"{IMAGE}=2"), 2)


def containers(daemon: docker.APIClient, worker_id: str, *labels: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = daemon.containers(
        all=True, filters={"label": [f"xrunner.worker={worker_id}", *labels]}
    )
    return found


async def start(box: DockerSandbox, workspace: Path, argv: list[str], memory_mib: int = 256, **spec: object
                ) -> DockerRun:
    workload = DockerWorkload(image=IMAGE, argv=argv, **spec)  # type: ignore[arg-type]
    job = JobSpec(workload=workload, resources=Resources(memory_mib=memory_mib), timeout_s=30)
    return await box.start(Launch(f"job-{uuid.uuid4().hex[:8]}", 1, job, made(workspace)))


def made(workspace: Path) -> Path:
    """The job's workspace, which the runner makes before it starts the job."""
    workspace.mkdir(parents=True, exist_ok=True)
    return workspace


async def run(box: DockerSandbox, workspace: Path, argv: list[str], **spec: object) -> Result:
    return await finish(await start(box, workspace, argv, **spec))


async def finish(proc: DockerRun) -> Result:
    """Run a job to its end as the runner does: output read while waiting for the exit (bounded: a job still
    running at the deadline is killed and the test fails)."""
    try:
        out, err, code = await asyncio.wait_for(asyncio.gather(proc.stdout.read(), proc.stderr.read(), proc.wait()), 20)
    finally:
        proc.signal_all(signal.SIGKILL)
        await proc.wait()
    return Result(code, out.decode(errors="replace"), err.decode(errors="replace"))


async def read_until(stream: asyncio.StreamReader, wanted: bytes, timeout: float = 10) -> bytes:
    seen = b""

    async def more() -> None:
        nonlocal seen
        while wanted not in seen:
            chunk = await stream.read(4096)
            assert chunk, f"output ended before {wanted!r}: {seen!r}"
            seen += chunk

    await asyncio.wait_for(more(), timeout)
    return seen


def gone(daemon: docker.APIClient, container_id: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            daemon.inspect_container(container_id)
        except NotFound:
            return True
        return False

    return check


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"image": IMAGE}) or 0.0


async def test_a_fork_bomb_is_held_at_the_pids_limit_and_the_machine_stays_usable(
    box: DockerSandbox, tmp_path: Path
) -> None:
    bomb = "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo $i; sleep 30 & done"
    result = await run(box, tmp_path / "job", ["sh", "-c", bomb])
    assert result.code != 0 and "can't fork" in result.err, result
    assert 0 < int(result.out.split()[-1]) < 64
    assert (await run(box, tmp_path / "next", ["echo", "still fine"])).out == "still fine\n"


async def test_a_container_that_allocates_past_its_memory_limit_is_killed(box: DockerSandbox, tmp_path: Path) -> None:
    hog = ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=200M count=1 && echo allocated"]
    result = await run(box, tmp_path / "job", hog, memory_mib=64)
    assert result.code == -signal.SIGKILL and "allocated" not in result.out, result


@pytest.mark.parametrize("network", [False, True], ids=["not asked", "asked but not allowed"])
async def test_a_container_has_no_network_and_cannot_reach_a_port_on_the_host(
    network: bool, boxes: OpenBox, tmp_path: Path, listener: tuple[int, list[bool]]  # noqa: F811
) -> None:
    port, accepted = listener
    probe = f"ls /sys/class/net; nc -w 2 127.0.0.1 {port} </dev/null && echo connected"
    result = await run(boxes(), tmp_path / "job", ["sh", "-c", probe], network=network)
    assert result.out == "lo\n", result
    assert accepted == []


async def test_a_job_gets_the_network_only_when_it_asks_and_the_operator_allows_it(
    boxes: OpenBox, tmp_path: Path
) -> None:
    box = await warmed(boxes(allow_network=True, warm_images=f"{IMAGE}=1"), 1)
    hits = sample("xrunner_worker_warm_hits_total")
    interfaces = await run(box, tmp_path / "job", ["ls", "/sys/class/net"], network=True)
    assert "eth0" in interfaces.out.split(), interfaces
    assert sample("xrunner_worker_warm_hits_total") == hits, "a job with network never runs warm"
    assert (await run(box, tmp_path / "job2", ["ls", "/sys/class/net"])).out == "lo\n"
    assert sample("xrunner_worker_warm_hits_total") == hits + 1


async def test_a_container_writes_only_its_workspace_and_tmp_and_never_sees_the_workers_environment(
    box: DockerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XR_PROBE_SECRET", "s3cret")
    name = f"xr-probe-{uuid.uuid4().hex}"
    script = (f"for d in /bin /etc / /var; do touch $d/{name} 2>/dev/null && echo wrote $d; done; "
              f"touch /tmp/{name} out-{name} && echo ok; env")
    proc = await start(box, tmp_path / "job", ["sh", "-c", script])
    result = await finish(proc)
    lines = result.out.splitlines()
    assert lines[0] == "ok", result
    assert "s3cret" not in result.out and "HOME=/workspace" in lines and any(x.startswith("XR_JOB_ID=") for x in lines)
    written = proc.workspace / f"out-{name}"
    assert written.exists() and written.stat().st_uid == 65534


async def test_a_double_forked_setsid_child_dies_with_the_job_when_the_job_exits_by_itself(
    box: DockerSandbox, tmp_path: Path, marker: str  # noqa: F811
) -> None:
    escapee = f'(setsid sh -c "sleep 300; :" {marker} &) ; sleep 0.5; exit 3'
    result = await run(box, tmp_path / "job", ["sh", "-c", escapee])
    assert result.code == 3
    await wait_until(lambda: not with_marker(marker), 5, "the escapee's end")


async def test_a_double_forked_setsid_child_dies_with_the_job_when_it_is_killed(
    box: DockerSandbox, tmp_path: Path, marker: str  # noqa: F811
) -> None:
    proc = await start(box, tmp_path / "job", ["sh", "-c", f'(setsid sh -c "sleep 300; :" {marker} &) ; sleep 300'])
    await wait_until(lambda: with_marker(marker), 10, "the escapee")
    proc.signal_all(signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
    await wait_until(lambda: not with_marker(marker), 5, "the escapee's end")


async def test_a_polite_signal_reaches_the_job_so_it_can_clean_up(box: DockerSandbox, tmp_path: Path) -> None:
    trap = "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done"
    proc = await start(box, tmp_path / "job", ["sh", "-c", trap])
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"ready\n"
    proc.signal_all(signal.SIGTERM)
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"got TERM\n"
    assert await asyncio.wait_for(proc.wait(), 10) == 7


async def test_an_interactive_shell_reads_what_is_written_to_its_stdin(box: DockerSandbox, tmp_path: Path) -> None:
    proc = await start(box, tmp_path / "job", ["sh"], interactive=True)
    proc.write_stdin(b"echo hi\n")
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"hi\n"
    proc.write_stdin(b"exit\n")
    assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_closing_an_interactive_jobs_stdin_ends_its_input(box: DockerSandbox, tmp_path: Path) -> None:
    proc = await start(box, tmp_path / "job", ["cat"], interactive=True)
    proc.write_stdin(b"abc")
    proc.close_stdin()
    proc.write_stdin(b"ignored once closed")
    assert await asyncio.wait_for(proc.stdout.read(), 10) == b"abc"
    assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_a_tty_job_sees_its_terminal_resized(box: DockerSandbox, tmp_path: Path) -> None:
    proc = await start(box, tmp_path / "job", ["sh", "-c", "while :; do stty size; sleep 0.1; done"], tty=True)
    proc.resize(30, 100)
    await read_until(proc.stdout, b"30 100")
    proc.signal_all(signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), 10)
    assert await proc.stderr.read() == b"", "a tty job's output is all on stdout"


async def test_a_warm_container_serves_exactly_one_job_and_the_pool_refills(
    warm_box: DockerSandbox, daemon: docker.APIClient, tmp_path: Path
) -> None:
    pool = warm_box.pools[IMAGE]
    ready = {w.container_id for w in pool.ready}
    hits, misses = sample("xrunner_worker_warm_hits_total"), sample("xrunner_worker_warm_misses_total")
    proc = await start(warm_box, tmp_path / "job", ["sh", "-c", "echo warm > out.txt"])
    assert proc.container_id in ready and proc.workspace != tmp_path / "job"
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert (proc.workspace / "out.txt").read_text() == "warm\n", "the workspace the runner collects from"
    await wait_until(gone(daemon, proc.container_id), 10, "the used container's removal")
    await wait_until(lambda: len(pool.ready) == 2, 20, "the refill")
    assert proc.container_id not in {w.container_id for w in pool.ready}
    assert sample("xrunner_worker_warm_hits_total") == hits + 1
    assert REGISTRY.get_sample_value("xrunner_worker_warm_ready", {"image": IMAGE}) == 2
    taken = [await start(warm_box, tmp_path / f"burst{i}", ["true"]) for i in range(3)]
    assert [p.exec_id is not None for p in taken] == [True, True, False], "the third found the pool empty"
    assert sample("xrunner_worker_warm_misses_total") == misses + 1
    assert [await asyncio.wait_for(p.wait(), 10) for p in taken] == [0, 0, 0]


async def test_a_missing_image_fails_the_job_cleanly(boxes: OpenBox, tmp_path: Path) -> None:
    job = JobSpec(workload=DockerWorkload(image="xrunner/no-such-image:test", argv=["true"]))
    with pytest.raises(SandboxError, match="not found on this worker"):
        await boxes().start(Launch("job-missing", 1, job, made(tmp_path / "job")))


async def test_a_kept_container_is_left_stopped_and_labelled(
    boxes: OpenBox, daemon: docker.APIClient, worker_id: str, tmp_path: Path
) -> None:
    box = boxes(warm_images=f"{IMAGE}=1")
    proc = await start(box, tmp_path / "job", ["sh", "-c", "echo kept"], keep_container=True)
    assert proc.exec_id is None, "a kept container is never a warm one"
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    await box.close()
    try:
        (kept,) = containers(daemon, worker_id, "xrunner.job")
        assert kept["Id"] == proc.container_id and kept["State"] == "exited"
        assert daemon.logs(proc.container_id) == b"kept\n"
    finally:
        daemon.remove_container(proc.container_id, force=True)


async def test_a_restarted_worker_removes_the_containers_its_previous_life_left(
    boxes: OpenBox, daemon: docker.APIClient, worker_id: str, tmp_path: Path
) -> None:
    orphan = await start(boxes(), tmp_path / "job", ["sleep", "300"])
    await boxes()._ready()  # the next life of the same worker
    assert containers(daemon, worker_id) == []
    assert await asyncio.wait_for(orphan.wait(), 10) == 137


def test_a_worker_without_a_reachable_daemon_offers_no_docker_workloads_unless_told_to(tmp_path: Path) -> None:
    unreachable = WorkerSettings(docker_url=f"unix://{tmp_path}/no-docker.sock")
    assert open_docker(unreachable, "w") is None
    with pytest.raises(RuntimeError, match="XR_WORKER_DOCKER=on"):
        open_docker(msgspec.structs.replace(unreachable, docker="on"), "w")


@pytest.mark.parametrize(("text", "pools"), [
    ("", {}),
    ("xrunner/busybox:test=4, alpine", {"xrunner/busybox:test": 4, "alpine": 2}),
    ("registry:5000/a/b@sha256:ab=1,c=0", {"registry:5000/a/b@sha256:ab": 1}),
])
def test_warm_images_name_an_image_and_its_pool_size(text: str, pools: dict[str, int]) -> None:
    assert parse_warm_images(text, default_size=2) == pools


@pytest.mark.parametrize("text", ["a=x", "=3", "a=-1", "a="])
def test_a_malformed_warm_image_entry_stops_the_worker_from_starting(text: str) -> None:
    with pytest.raises(ValueError, match="IMAGE=SIZE"):
        parse_warm_images(text, default_size=2)


async def test_a_docker_job_runs_through_the_whole_worker(cluster: Cluster, worker_id: str) -> None:
    cluster.start("scheduler", "scheduler", wait=False, tick_s=0.1, worker_lease_s=3)
    cluster.start("gateway", "gateway", wait=False)
    cluster.start("worker", "worker", wait=False, worker_id=worker_id, docker="on", warm_images=f"{IMAGE}=1")
    for name in list(cluster.procs):
        cluster.wait_ready(name)
    workload = {"kind": "docker", "image": IMAGE, "argv": ["sh", "-c", "echo from docker; id -u"]}
    async with cluster.client(TENANT) as client:
        job_id = await submit(client, {"workload": workload})
        done = await wait_until(lambda: all_terminal(client, [job_id]), 30, "the docker job")
        assert done[job_id]["state"] == "succeeded", done
        log = await client.get(f"/v1/jobs/{job_id}/logs")
    assert log.text == "from docker\n65534\n"
    started = [e for e in await history(cluster.nats_url, job_id) if isinstance(e, ev.JobStarted)]
    assert [e.sandbox for e in started] == ["docker"]



async def test_a_sigkilled_workers_containers_are_removed_by_its_reaper(
    cluster: Cluster, daemon: docker.APIClient, worker_id: str
) -> None:
    cluster.start("scheduler", "scheduler", wait=False, tick_s=0.1, worker_lease_s=3)
    cluster.start("gateway", "gateway", wait=False)
    cluster.start("worker", "worker", wait=False, worker_id=worker_id, docker="on", warm_images=f"{IMAGE}=1")
    for name in list(cluster.procs):
        cluster.wait_ready(name)
    async with cluster.client(TENANT) as client:
        for argv in (["sleep", "300"], ["sh", "-c", "sleep 300"]):  # one warm, one cold
            await submit(client, {"workload": {"kind": "docker", "image": IMAGE, "argv": argv}})
        await wait_until(lambda: len(containers(daemon, worker_id)) >= 3, 30, "two job containers and a warm one")
    cluster.kill("worker")
    await wait_until(lambda: not containers(daemon, worker_id), 30, "no container of the dead worker")
