"""Interactive jobs: the process sandbox's open stdin and pseudo-terminal in both of its modes, and a real worker
feeding a job's stdin from core NATS `xr.stdin.<job_id>`."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import pytest
from integration.cluster import Cluster
from integration.test_attach import stack
from integration.test_sandbox import MODES, no_leftover_cgroups, sandbox, start  # noqa: F401 (an autouse fixture)
from nats.aio.client import Client
from nats.errors import NoRespondersError
from support import wait_until

from xrunner.contracts import subjects
from xrunner.servicekit import streams
from xrunner.worker.sandbox import STDIN_BACKLOG
from xrunner.worker.sandbox.process.sandbox import ProcessRun, ProcessSandbox

TENANT = "acme"


@pytest.fixture
def worker_id() -> str:
    return f"probe-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=MODES)
def box(request: pytest.FixtureRequest, worker_id: str) -> ProcessSandbox:
    """The process sandbox in each of its modes."""
    return sandbox(request.param, worker_id)


async def output_until(reader: asyncio.StreamReader, needle: bytes, timeout: float = 10) -> bytes:
    seen = b""
    async with asyncio.timeout(timeout):
        while needle not in seen:
            chunk = await reader.read(65_536)
            assert chunk, f"the output ended before {needle!r}: {seen!r}"
            seen += chunk
    return seen


async def finish(run: ProcessRun, timeout: float = 10) -> tuple[int, bytes, bytes]:
    """The rest of the job's output and its exit status (a job still running at the deadline is killed)."""
    try:
        out, err, code = await asyncio.wait_for(asyncio.gather(run.stdout.read(), run.stderr.read(), run.wait()),
                                                timeout)
    finally:
        run.signal_all(signal.SIGKILL)
        await run.wait()
    return code, out, err


async def test_a_jobs_stdin_text_is_all_it_reads_unless_it_is_interactive(box: ProcessSandbox, tmp_path: Path) -> None:
    run = await start(box, tmp_path, ["cat"], stdin="given\n")
    assert run.stdin is None and run.write_stdin(b"ignored\n")
    assert await finish(run) == (0, b"given\n", b"")


async def test_an_interactive_jobs_stdin_stays_open_for_what_is_written_until_it_is_closed(
    box: ProcessSandbox, tmp_path: Path
) -> None:
    run = await start(box, tmp_path, ["sh"], stdin="echo first\n", interactive=True)
    assert await output_until(run.stdout, b"first\n") == b"first\n"
    assert run.write_stdin(b"echo hi; echo oops >&2\n")
    await output_until(run.stdout, b"hi\n")
    run.resize(30, 90)  # no terminal: nothing to resize
    run.close_stdin()
    assert await finish(run) == (0, b"", b"oops\n")


async def test_a_tty_job_has_its_terminal_as_controlling_terminal_and_sees_resizes(
    box: ProcessSandbox, tmp_path: Path
) -> None:
    script = ("test -t 0 && test -t 1 && test -t 2 && echo all-tty-$((6*7)); stty size; "
              ": </dev/tty && echo ctty-$((6*7)); trap 'stty size; exit 3' WINCH; echo ready; "
              "while :; do sleep 0.05; done")
    run = await start(box, tmp_path, ["sh", "-c", script], tty=True)
    seen = await output_until(run.stdout, b"ready")
    run.resize(33, 101)  # SIGWINCH reaches the terminal's foreground process group: the job
    code, rest, err = await finish(run)
    assert (code, err) == (3, b"")
    assert (seen + rest).split(b"\r\n") == [b"all-tty-42", b"24 80", b"ctty-42", b"ready", b"33 101", b""]


async def test_a_tty_jobs_input_is_typed_into_its_terminal_and_closing_it_types_end_of_file(
    box: ProcessSandbox, tmp_path: Path
) -> None:
    run = await start(box, tmp_path, ["sh"], stdin="stty size\n", tty=True)
    await output_until(run.stdout, b"24 80\r\n")  # the terminal echoes what is typed, then the shell answers
    run.resize(50, 132)
    assert run.write_stdin(b"stty size\n")
    await output_until(run.stdout, b"50 132\r\n")
    run.close_stdin()
    code, _, err = await finish(run)
    assert (code, err) == (0, b"")


async def test_input_a_job_leaves_unread_is_bounded_and_the_rest_dropped(box: ProcessSandbox, tmp_path: Path) -> None:
    run = await start(box, tmp_path, ["sleep", "30"], interactive=True)
    chunk, accepted = b"x" * 65_536, 0
    while run.write_stdin(chunk):
        accepted += len(chunk)
        assert accepted < 4 * STDIN_BACKLOG, "input the job does not read is buffered without bound"
    assert accepted >= STDIN_BACKLOG
    run.signal_all(signal.SIGKILL)
    await finish(run)


async def send(nc: Client, job_id: str, data: bytes = b"", **headers: str) -> bytes:
    """One stdin message, as a request: retried while no worker listens yet (the job is still starting)."""
    for _ in range(1000):
        try:
            return (await nc.request(subjects.job_stdin(job_id), data, timeout=5, headers=headers or None)).data
        except NoRespondersError:
            await asyncio.sleep(0.02)
    raise AssertionError(f"no worker listened on {subjects.job_stdin(job_id)}")


async def finished(cluster: Cluster, job_id: str) -> tuple[str, str]:
    """The job's final state and its whole log, through the gateway."""
    async with cluster.client(TENANT) as client:
        state = await wait_until(lambda: _terminal(client, job_id), timeout=30, what=f"job {job_id} to end")
        return state, (await client.get(f"/v1/jobs/{job_id}/logs")).text


async def _terminal(client: object, job_id: str) -> str | None:
    state = (await client.get(f"/v1/jobs/{job_id}")).json()["state"]  # type: ignore[attr-defined]
    return None if state in ("submitted", "queued", "dispatched", "running") else str(state)


async def submit(cluster: Cluster, **workload: object) -> str:
    async with cluster.client(TENANT) as client:
        response = await client.post("/v1/jobs", json={"workload": {"kind": "process", **workload}})
        assert response.status_code in (201, 202), response.text
        return str(response.json()["job"]["id"])


async def test_a_worker_feeds_an_interactive_jobs_stdin_from_nats_until_eof(cluster: Cluster) -> None:
    stack(cluster)
    nc = await streams.connect(cluster.nats_url, "test-stdin")
    try:
        job = await submit(cluster, argv=["sh"], stdin="echo first\n", interactive=True)
        await send(nc, job, b"echo hi\n")
        await send(nc, job, b"echo last\n", **{subjects.STDIN_EOF_HEADER: "1"})
        assert await finished(cluster, job) == ("succeeded", "first\nhi\nlast\n")
        tty = await submit(cluster, argv=["sh"], tty=True)
        await send(nc, tty, **{subjects.STDIN_RESIZE_HEADER: "40x120"})
        await send(nc, tty, b"stty size\n")
        await send(nc, tty, **{subjects.STDIN_RESIZE_HEADER: "not a size"})  # ignored
        await send(nc, tty, b"exit 4\n")
        state, log = await finished(cluster, tty)
        # stty's line; what precedes it depends on timing: the prompt, or the terminal's echo of typed-ahead lines
        assert state == "failed" and "40 120\r\n" in log, log
    finally:
        await nc.close()


async def test_a_worker_drops_input_its_job_does_not_read_and_says_so_in_the_log(cluster: Cluster) -> None:
    stack(cluster)
    nc = await streams.connect(cluster.nats_url, "test-stdin")
    try:
        job = await submit(cluster, argv=["sleep", "60"], interactive=True)
        for _ in range(3 * STDIN_BACKLOG // 65_536):
            await send(nc, job, b"x" * 65_536)
        async with cluster.client(TENANT) as client:
            assert (await client.post(f"/v1/jobs/{job}/cancel")).status_code == 202
        state, log = await finished(cluster, job)
    finally:
        await nc.close()
    assert state == "cancelled"
    assert log.count("[xrunner: input dropped: the job is not reading its stdin]") == 1, log
