"""The embedded stack outlives the death of its own servers: a SIGKILLed nats-server or Postgres is restarted by
`xrunner up` on the same port and data, the services pick it up without being restarted, and new jobs run."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import SERVICES, Stack, free_base, processes_under, start_stack, stop_stack

pytestmark = pytest.mark.e2e

RECOVERY_TARGET_S = 10.0
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "expired", "rejected"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("faults") / ".xrunner"
    running = start_stack(data_dir, free_base())
    try:
        yield running
    finally:
        assert stop_stack(running) == 0
        assert processes_under(data_dir) == []


def pids(stack: Stack) -> dict[str, int]:
    """The live process of each service and of nats-server, by name."""
    found = {}
    for line in processes_under(stack.data_dir):
        pid, cmdline = line.split(": ", 1)
        for name in SERVICES:
            if f"-m xrunner.{name} " in cmdline + " ":
                found[name] = int(pid)
        if "nats-server" in cmdline:
            found["nats-server"] = int(pid)
    return found


def postmaster_pid(stack: Stack) -> int:
    return int((stack.data_dir / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])


def submit_until_accepted(client: httpx.Client, argv: list[str], deadline: float) -> str:
    """Submit once, retried (same Idempotency-Key, so never twice) while the stack answers with errors."""
    key = uuid.uuid4().hex
    while True:
        try:
            response = client.post(
                "/v1/jobs",
                json={"workload": {"kind": "process", "argv": argv}},
                headers={"Idempotency-Key": key},
                timeout=5,
            )
            if response.status_code in (200, 201, 202):
                return str(response.json()["job"]["id"])
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        assert time.monotonic() < deadline, f"no submit accepted; last answer: {last}"
        time.sleep(0.05)


def wait_done(client: httpx.Client, job_id: str, deadline: float) -> dict:
    """Poll the job until it is terminal, tolerating errors while the stack recovers."""
    while True:
        try:
            response = client.get(f"/v1/jobs/{job_id}", timeout=5)
            if response.status_code == 200 and response.json()["state"] in TERMINAL:
                return dict(response.json())
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        assert time.monotonic() < deadline, f"job {job_id} not done; last answer: {last}"
        time.sleep(0.05)


def recovery_after(stack: Stack, fault: Callable[[], None]) -> tuple[float, dict[str, int]]:
    """Run a job, inject `fault`, then time fault → first job submitted afterwards done (and check it succeeded).
    Returns that time and the pids of the services before the fault."""
    with stack.client() as client:
        before_job = wait_done(
            client, submit_until_accepted(client, ["echo", "before"], time.monotonic() + 30), time.monotonic() + 30
        )
        assert before_job["state"] == "succeeded"
        services = {name: pid for name, pid in pids(stack).items() if name in SERVICES}
        assert sorted(services) == sorted(SERVICES)
        began = time.monotonic()
        fault()
        deadline = began + 60
        job = wait_done(client, submit_until_accepted(client, ["echo", "after"], deadline), deadline)
        recovery = time.monotonic() - began
        assert job["state"] == "succeeded", job
        assert client.get(f"/v1/jobs/{job['id']}/logs").text == "after\n"
        assert client.get(f"/v1/jobs/{before_job['id']}/logs").text == "before\n"  # state from before the fault
    return recovery, services


def supervisor_log(stack: Stack) -> str:
    path = stack.data_dir / "logs" / "supervisor.log"
    return path.read_text() if path.exists() else ""


def test_a_sigkilled_nats_server_is_restarted_and_new_jobs_run_without_restarting_a_service(stack: Stack) -> None:
    killed = pids(stack)["nats-server"]
    recovery, services = recovery_after(stack, lambda: os.kill(killed, signal.SIGKILL))
    print(f"\nrecovery after nats-server SIGKILL: {recovery:.2f}s")
    after = pids(stack)
    assert after["nats-server"] != killed
    assert "nats-server exited (signal SIGKILL)" in supervisor_log(stack)
    assert {name: after[name] for name in SERVICES} == services, "a service was restarted"
    assert recovery <= RECOVERY_TARGET_S


def test_a_sigkilled_postmaster_is_restarted_and_new_jobs_run(stack: Stack) -> None:
    killed = postmaster_pid(stack)
    recovery, services = recovery_after(stack, lambda: os.kill(killed, signal.SIGKILL))
    print(f"\nrecovery after Postgres SIGKILL: {recovery:.2f}s")
    assert postmaster_pid(stack) != killed and Path(f"/proc/{postmaster_pid(stack)}").exists()
    assert "postgres exited (signal SIGKILL)" in supervisor_log(stack)
    # The scheduler's leader may end on a query cut off by the kill; the supervisor then restarts it (allowed).
    after = pids(stack)
    assert {name: after.get(name) for name in SERVICES if name != "scheduler"} == {
        name: pid for name, pid in services.items() if name != "scheduler"
    }, "a service other than the scheduler was restarted"
    assert recovery <= RECOVERY_TARGET_S


def test_metrics_name_tenants_only_to_the_operator_token(stack: Stack) -> None:
    with stack.client("metrics-tenant") as client:
        wait_done(client, submit_until_accepted(client, ["true"], time.monotonic() + 30), time.monotonic() + 30)
    token = (stack.data_dir / "metrics-token").read_text().strip()
    scheduler = f"http://127.0.0.1:{stack.port + SERVICES.index('scheduler')}/metrics"
    deadline = time.monotonic() + 15
    while 'tenant="metrics-tenant"' not in (
        full := httpx.get(scheduler, headers={"Authorization": f"Bearer {token}"}).text
    ):
        assert time.monotonic() < deadline, "the scheduler never exported the tenant's series"
        time.sleep(0.1)
    assert "xrunner_tenant_inflight{" in full
    for port in range(stack.port, stack.port + len(SERVICES)):
        public = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert public.status_code == 200 and "python_info" in public.text
        assert "tenant=" not in public.text and "metrics-tenant" not in public.text
        assert (
            httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        )
