"""The compose suite (infra/compose) comes up from the images: a job submitted to one gateway runs end to end on
the 3-node JetStream cluster, and its state and log are read through the other gateway and the other edge."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from dockerkit import BUILDS_IMAGES, REPO, free_port, wait_for

from xrunner.servicekit.auth import SCOPES, mint

pytestmark = BUILDS_IMAGES

COMPOSE_FILE = REPO / "infra/compose/docker-compose.yml"
SECRET = "compose-test-secret-of-at-least-32-bytes"
PORTS = ("XR_GATEWAY_1_PORT", "XR_GATEWAY_2_PORT", "XR_REALTIME_1_PORT", "XR_REALTIME_2_PORT", "XR_ARTIFACTS_PORT")


@dataclass(frozen=True)
class Suite:
    project: str
    ports: dict[str, int]

    def url(self, port: str) -> str:
        return f"http://127.0.0.1:{self.ports[port]}"

    def client(self, port: str) -> httpx.Client:
        token = mint(SECRET, tenant="acme", subject="acme-tester", scopes=list(SCOPES), issuer="xrunner",
                     audience="xrunner", ttl_s=600, now=int(time.time()))
        return httpx.Client(base_url=self.url(port), headers={"Authorization": f"Bearer {token}"}, timeout=30)


def compose(suite_env: dict[str, str], project: str, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(["docker-compose", "-p", project, "-f", str(COMPOSE_FILE), *args], env=suite_env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"docker-compose {' '.join(args)} failed: {done.stderr[-4000:]}")
    return done.stdout


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def suite(images: str) -> Iterator[Suite]:
    project = f"xrcompose{os.getpid()}"
    ports = {name: free_port() for name in PORTS}
    env = {**os.environ, "XR_IMAGE_TAG": images, "XR_JWT_SECRET": SECRET, **{k: str(v) for k, v in ports.items()}}
    try:
        compose(env, project, "up", "-d", "--quiet-pull")
        suite = Suite(project, ports)
        for port in PORTS:
            wait_for(f"{port} ready", lambda port=port: ready(suite.url(port)), timeout=120)
        yield suite
    except Exception:
        print(compose(env, project, "logs", "--no-color", "--tail", "40"))
        raise
    finally:
        compose(env, project, "down", "-v", "--remove-orphans", "--timeout", "10")


def test_a_job_submitted_to_one_gateway_succeeds_and_its_log_reads_through_the_other_gateway_and_edge(
    suite: Suite,
) -> None:
    with suite.client("XR_GATEWAY_1_PORT") as first, suite.client("XR_GATEWAY_2_PORT") as second:
        submitted = first.post("/v1/jobs", json={"workload": {"kind": "process",
                                                              "argv": ["sh", "-c", "echo hello from compose"]}})
        assert submitted.status_code in (201, 202), submitted.text
        job_id = submitted.json()["job"]["id"]
        states: list[str] = []

        def finished() -> bool:
            job = second.get(f"/v1/jobs/{job_id}").json()
            states.append(job["state"])
            return job["state"] in ("succeeded", "failed", "timed_out", "cancelled", "lost")

        wait_for(f"job {job_id} terminal", finished, timeout=60)
        assert states[-1] == "succeeded", states
        assert second.get(f"/v1/jobs/{job_id}/logs").text == "hello from compose\n"
    with suite.client("XR_REALTIME_2_PORT") as edge, edge.stream("GET", f"/v1/jobs/{job_id}/logs/stream") as stream:
        seen = "".join(line + "\n" for line in stream.iter_lines() if not line.startswith(":"))
    assert "hello from compose" in seen and "event: end" in seen, seen


def test_every_stream_is_replicated_on_the_three_nats_nodes(suite: Suite) -> None:
    query = ("import urllib.request; print(urllib.request.urlopen("
             "'http://127.0.0.1:8222/jsz?streams=true', timeout=5).read().decode())")
    done = subprocess.run(["docker", "exec", f"{suite.project}_nats-1_1", "python3", "-c", query],
                          capture_output=True, text=True, check=True)
    streams = json.loads(done.stdout)["account_details"][0]["stream_detail"]
    assert {s["name"] for s in streams} >= {"XR_EVENTS", "XR_RUN", "XR_LOGS", "KV_xr_leases"}
    assert {s["name"]: 1 + len(s["cluster"]["replicas"]) for s in streams} == {s["name"]: 3 for s in streams}
