"""The embedded stack's supervisor restarts what exits, with back-off, and stops layer by layer."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from xrunner.cli import embedded
from xrunner.cli.supervisor import Child, Supervisor, restart_delay


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 0.0), (1, 0.25), (2, 0.5), (3, 1.0), (7, 16.0), (8, 30.0), (50, 30.0)]
)
def test_the_restart_delay_doubles_per_short_run_up_to_a_cap(failures: int, delay: float) -> None:
    assert restart_delay(failures) == delay


def shell(tmp_path: Path, name: str, script: str) -> Callable[[], embedded.Launched]:
    """Launches `sh -c script`; it counts as ready once the script has run `$READY` (touched that file)."""

    def launch() -> embedded.Launched:
        log, ready = tmp_path / f"{name}.log", tmp_path / f"{name}.ready"
        ready.unlink(missing_ok=True)
        proc = embedded.spawn(["sh", "-c", script], log, env={**os.environ, "READY": f"touch {ready}"})
        return embedded.Launched(proc, ready.exists, name, log, 5.0)

    return launch


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    running = Supervisor(healthy_after_s=1.0)
    try:
        yield running
    finally:
        running.stop()


def supervise_until(supervisor: Supervisor, done: Callable[[], bool], timeout: float = 10.0) -> list[str]:
    """Tick until `done()`; returns every line the supervisor reported."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not done after {timeout}s; supervisor said {lines}"
        lines += supervisor.tick()
        time.sleep(0.01)
    return lines


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and fields[0] != "Z" and fields[2] == str(pgid):
            members.append(int(entry.name))
    return members


def test_a_killed_child_is_restarted_and_its_leftover_processes_are_killed_first(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    child = Child("server", shell(tmp_path, "server", "sleep 300 & $READY; exec sleep 301"), layer=0)
    supervisor.add(child)
    supervisor.wait_ready(child)
    first = child.proc
    supervise_until(supervisor, lambda: len(group_members(first.pid)) == 2)  # the leader and its background sleep
    os.kill(first.pid, signal.SIGKILL)
    lines = supervise_until(supervisor, lambda: child.proc is not first and child.ready)
    assert group_members(first.pid) == []
    assert child.restarts == 1 and child.proc.poll() is None
    assert any("server exited (signal SIGKILL)" in line for line in lines), lines
    assert any("server restarted" in line for line in lines), lines


def test_consecutive_short_runs_back_off_and_a_healthy_run_resets_the_back_off(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    child = Child("flaky", shell(tmp_path, "flaky", "exit 3"), layer=0)
    supervisor.add(child)
    supervise_until(supervisor, lambda: child.restarts == 3)
    assert child.failures == 3 and child.restart_at is None
    lines = supervise_until(supervisor, lambda: child.restart_at is not None)
    assert child.failures == 4 and any("exited (code 3)" in line and "restarting in 2.00s" in line for line in lines)
    child.launch = shell(tmp_path, "flaky", "$READY; exec sleep 300")
    supervise_until(supervisor, lambda: child.restarts == 4 and child.ready)
    steady = child.proc
    supervise_until(supervisor, lambda: time.monotonic() - child.started_at > supervisor.healthy_after_s)
    os.kill(steady.pid, signal.SIGKILL)
    lines = supervise_until(supervisor, lambda: child.restart_at is not None)
    assert child.failures == 1 and any("restarting in 0.25s" in line for line in lines), lines


def test_stop_stops_the_higher_layer_first_and_leaves_nothing_running(supervisor: Supervisor, tmp_path: Path) -> None:
    order = tmp_path / "order"
    # The service takes a while to stop: the server must still be running until it has.
    forever = "while :; do sleep 0.05; done"
    service_script = f"trap 'sleep 0.3; echo service >> {order}; exit 0' TERM; $READY; {forever}"
    service = Child("service", shell(tmp_path, "service", service_script), layer=1)
    server_script = f"trap 'echo server >> {order}; exit 0' TERM; $READY; {forever}"
    server = Child("server", shell(tmp_path, "server", server_script), layer=0)
    supervisor.add(server, service)
    supervisor.wait_ready(server, service)
    supervisor.stop()
    assert order.read_text().split() == ["service", "server"]
    assert server.proc.returncode == 0 and service.proc.returncode == 0
    assert group_members(server.proc.pid) == [] and group_members(service.proc.pid) == []
