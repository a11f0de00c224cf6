"""The embedded stack end to end, over HTTP: jobs run to completion as separate processes talk through NATS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest
from conftest import SERVICES, Stack, free_base, processes_under, start_stack, stop_stack

from xrunner.cli.projections import REBUILDABLE

pytestmark = pytest.mark.e2e

TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "expired", "rejected"}


def submit(client: httpx.Client, argv: list[str], **spec: object) -> dict:
    response = client.post("/v1/jobs", json={"workload": {"kind": "process", "argv": argv}, **spec})
    assert response.status_code in (201, 202), response.text
    return response.json()["job"]


def wait_terminal(client: httpx.Client, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout}s"
        time.sleep(0.05)


def wait_listed(client: httpx.Client, params: dict[str, object], job_id: str, timeout: float = 10) -> dict:
    """The page of `GET /v1/jobs` with `params`, once its first job is `job_id` (or the last one read at the
    deadline, for the caller's assertion to show)."""
    deadline = time.monotonic() + timeout
    while True:
        listed: dict = client.get("/v1/jobs", params=params).json()
        if [j["id"] for j in listed["jobs"]][:1] == [job_id] or time.monotonic() >= deadline:
            return listed
        time.sleep(0.05)


def test_every_service_answers_health_readiness_and_metrics(stack: Stack) -> None:
    for i, name in enumerate(SERVICES):
        base = f"http://127.0.0.1:{stack.port + i}"
        assert httpx.get(f"{base}/healthz").status_code == 200, name
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True, (name, ready.text)
        assert "python_info" in httpx.get(f"{base}/metrics").text, name


def test_a_command_runs_to_success_with_its_output_readable(stack: Stack) -> None:
    with stack.client() as client:
        job = submit(client, ["sh", "-c", "echo hello; echo oops >&2"])
        assert job["state"] in ("submitted", "queued", "dispatched", "running", "succeeded")
        done = wait_terminal(client, job["id"])
        assert (done["state"], done["exit_code"], done["attempt"]) == ("succeeded", 0, 1)
        assert done["sandbox"] == ("process" if shutil.which("bwrap") else "none")
        assert done["created_at"] <= done["queued_at"] <= done["started_at"] <= done["finished_at"]
        logs = client.get(f"/v1/jobs/{job['id']}/logs")
        assert logs.status_code == 200
        assert "hello\n" in logs.text and "oops\n" in logs.text
        assert int(logs.headers["X-Next-Offset"]) == len(logs.content)


def test_a_jobs_files_are_counted_listed_and_downloaded_through_the_artifacts_api(stack: Stack) -> None:
    report = '{"loss": 0.25}'
    with stack.client() as client:
        job = submit(client, ["sh", "-c", f"mkdir -p out && printf '{report}' > out/report.json && echo ok"])
        assert wait_terminal(client, job["id"])["state"] == "succeeded"
        deadline = time.monotonic() + 20
        while client.get(f"/v1/jobs/{job['id']}").json()["artifacts"] < 2:  # out/report.json and logs.txt
            assert time.monotonic() < deadline, "the gateway did not count the job's artifacts"
            time.sleep(0.1)
        saved = dict(line.split("=", 1) for line in (stack.data_dir / "env").read_text().splitlines())
        listed = httpx.get(f"{saved['XR_ARTIFACTS_URL']}/v1/jobs/{job['id']}/artifacts",
                           headers=client.headers, timeout=10)
        assert listed.status_code == 200, listed.text
        item = {a["name"]: a for a in listed.json()}["out/report.json"]
        assert httpx.get(item["url"], timeout=10).text == report  # the signed URL needs no token
        preview_url = f"{saved['XR_ARTIFACTS_URL']}/v1/artifacts/{item['id']}/preview"
        while (preview := httpx.get(preview_url, headers=client.headers, timeout=10)).status_code == 404:
            assert time.monotonic() < deadline + 40, "the artifacts service did not preview the report"
            time.sleep(0.2)
    assert preview.status_code == 200, preview.text
    assert (preview.json()["kind"], preview.json()["line_count"]) == ("text", 3)  # pretty-printed JSON


def test_a_failing_command_ends_failed_with_its_exit_code(stack: Stack) -> None:
    with stack.client() as client:
        done = wait_terminal(client, submit(client, ["sh", "-c", "exit 3"])["id"])
        assert (done["state"], done["exit_code"]) == ("failed", 3)


def test_logs_can_be_read_from_an_offset(stack: Stack) -> None:
    with stack.client() as client:
        job_id = submit(client, ["sh", "-c", "printf 0123456789"])["id"]
        wait_terminal(client, job_id)
        tail = client.get(f"/v1/jobs/{job_id}/logs", params={"offset": 4, "format": "json"}).json()
        assert (tail["text"], tail["next_offset"], tail["complete"]) == ("456789", 10, True)


def test_an_invalid_spec_is_refused_with_the_field_path(stack: Stack) -> None:
    with stack.client() as client:
        response = client.post(
            "/v1/jobs", json={"workload": {"kind": "process", "argv": ["x"]}, "resources": {"memory_mib": "lots"}}
        )
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["field"] == "$.resources.memory_mib"
        unknown = client.post("/v1/jobs", json={"workload": {"kind": "process", "argv": ["x"], "shell": True}})
        assert unknown.status_code == 400 and "shell" in unknown.json()["detail"]


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic Zm9vOmJhcg==", "Bearer a.b.c"])
def test_a_missing_or_bad_token_is_refused_before_the_body_is_read(stack: Stack, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = httpx.post(f"{stack.api}/v1/jobs", json={"not": "a spec"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_another_tenants_job_is_not_found(stack: Stack) -> None:
    with stack.client("acme") as acme, stack.client("globex") as globex:
        job_id = submit(acme, ["true"])["id"]
        for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/logs"):
            response = globex.get(path)
            assert response.status_code == 404 and "acme" not in response.text


def test_the_stack_stops_cleanly_and_keeps_its_state_across_a_restart(tmp_path) -> None:
    data_dir = tmp_path / ".xrunner"
    first = start_stack(data_dir, free_base())
    with first.client() as client:
        job_id = submit(client, ["sh", "-c", "echo persisted"])["id"]
        wait_terminal(client, job_id)
    assert stop_stack(first) == 0
    assert processes_under(data_dir) == []
    second = start_stack(data_dir, free_base())
    try:
        with second.client() as client:
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["state"] == "succeeded"
            assert client.get(f"/v1/jobs/{job_id}/logs").text == "persisted\n"
            after = wait_terminal(client, submit(client, ["true"])["id"])
            assert after["state"] == "succeeded"
    finally:
        stop_stack(second)
    assert processes_under(data_dir) == []


@pytest.mark.parametrize("service", list(REBUILDABLE))
def test_a_rebuilt_projection_equals_the_live_one(stack: Stack, service: str) -> None:
    with stack.client() as client:
        wait_terminal(client, submit(client, ["true"])["id"])
    deadline = time.monotonic() + 20
    while True:  # the live projection may still be folding the last events
        result = subprocess.run([sys.executable, "-m", "xrunner.cli", "projections", "rebuild", service,
                                 "--data-dir", str(stack.data_dir)], capture_output=True, text=True, timeout=120)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rebuild equals the live projection" in result.stdout


def test_a_job_past_its_timeout_is_stopped_and_ends_timed_out(stack: Stack) -> None:
    with stack.client() as client:
        began = time.monotonic()
        done = wait_terminal(client, submit(client, ["sleep", "30"], timeout_s=0.5)["id"])
        assert done["state"] == "timed_out"
        assert time.monotonic() - began < 10


def test_a_running_job_is_cancelled_through_its_worker(stack: Stack) -> None:
    with stack.client() as client:
        job_id = submit(client, ["sleep", "30"])["id"]
        deadline = time.monotonic() + 15
        while client.get(f"/v1/jobs/{job_id}").json()["state"] != "running":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        assert client.post(f"/v1/jobs/{job_id}/cancel", json={"reason": "test"}).status_code == 202
        done = wait_terminal(client, job_id, timeout=15)
        assert done["state"] == "cancelled" and done["cancel_requested"] is True


def test_a_job_can_be_listed_rerun_and_its_log_read_as_ndjson(stack: Stack) -> None:
    with stack.client("lister") as client:
        first = wait_terminal(client, submit(client, ["sh", "-c", "echo out; echo err >&2"], labels={"k": "v"})["id"])
        again = client.post(f"/v1/jobs/{first['id']}/rerun")
        assert again.status_code in (201, 202)
        second = wait_terminal(client, again.json()["job"]["id"])
        assert second["spec"] == first["spec"] and second["id"] != first["id"]
        # the list reads the read model, which may fold the rerun's end a few ms after its URL shows it
        listed = wait_listed(client, {"label": "k=v", "state": "succeeded", "limit": 1}, second["id"])
        assert [j["id"] for j in listed["jobs"]] == [second["id"]] and listed["next_cursor"]
        older = client.get("/v1/jobs", params={"label": "k=v", "cursor": listed["next_cursor"]}).json()
        assert [j["id"] for j in older["jobs"]] == [first["id"]] and older["next_cursor"] is None
        lines = client.get(f"/v1/jobs/{first['id']}/logs", params={"format": "ndjson"}).text.splitlines()
        chunks = [json.loads(line) for line in lines]
        assert "".join(c["text"] for c in chunks[:-1]) in ("out\nerr\n", "err\nout\n")
        assert {c["stream"] for c in chunks[:-1]} >= {"stdout", "stderr"}
        assert chunks[-1] == {"next_offset": 8, "complete": True}


def test_xrunner_submit_wait_prints_the_output_and_exits_with_the_jobs_code(stack: Stack) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}  # all it needs is in the data dir
    command = [sys.executable, "-m", "xrunner.cli", "submit", "--wait", "--data-dir", str(stack.data_dir), "--",
               "sh", "-c", "echo hi; exit 4"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (4, "hi\n"), result.stderr
    assert f"XR_REALTIME_URL=http://127.0.0.1:{stack.port + 1}\n" in (stack.data_dir / "env").read_text()
