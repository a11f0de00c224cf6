"""Each image carries its version and git revision, runs as a non-root user on a read-only root filesystem, and
turns healthy (its own HEALTHCHECK) against the suite's NATS, Postgres and S3 images on a private network."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from dockerkit import BUILDS_IMAGES, INFRA, REPO, SERVICES, docker, inspect, wait_for

pytestmark = BUILDS_IMAGES

PASSWORD = "images-test"
SERVICE_ENV = {
    "XR_JWT_SECRET": "images-test-secret",
    "XR_WORKER_SANDBOX": "none",
    "XR_WORKER_DOCKER": "off",
    "XR_ARTIFACT_STORE": "s3",
    "XR_S3_BUCKET": "artifacts",
    "XR_S3_ENDPOINT_URL": "http://s3:5000",
    "XR_S3_ACCESS_KEY_ID": "moto",
    "XR_S3_SECRET_ACCESS_KEY": "moto",
}


def run(network: str, alias: str, image: str, env: dict[str, str]) -> str:
    """Start `image` detached on `network` as `alias`, read-only with a /tmp tmpfs, checked every second."""
    args = ["run", "-d", "--name", f"{network}-{alias}", "--network", network, "--network-alias", alias,
            "--read-only", "--tmpfs", "/tmp:exec,mode=1777", "--health-interval", "1s"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    return docker(*args, image)


def healthy(container: str) -> bool:
    state = inspect(container)["State"]
    if not state["Running"]:
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
        raise AssertionError(f"{container} exited ({state['ExitCode']}): {(logs.stdout + logs.stderr)[-2000:]}")
    return bool(state["Health"]["Status"] == "healthy")


@pytest.fixture(scope="module")
def network(images: str) -> Iterator[str]:
    """A network with nats, postgres and s3 up and healthy."""
    name = f"xr-images-{os.getpid()}"
    docker("network", "create", name)
    try:
        run(name, "nats", f"xrunner/nats:{images}", {})
        run(name, "postgres", f"xrunner/postgres:{images}", {"XR_POSTGRES_PASSWORD": PASSWORD})
        run(name, "s3", f"xrunner/s3:{images}", {"XR_S3_BUCKETS": "artifacts"})
        for alias in INFRA:
            wait_for(f"{alias} healthy", lambda alias=alias: healthy(f"{name}-{alias}"))
        yield name
    finally:
        containers = docker("ps", "-aq", "--filter", f"name=^{name}-").split()
        if containers:
            docker("rm", "-f", "-v", *containers)
        docker("network", "rm", name)


def git_revision() -> str:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    clean = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=REPO).returncode == 0
    return head if clean else f"{head}-dirty"


@pytest.mark.parametrize("image", SERVICES + INFRA)
def test_an_image_is_labelled_with_its_version_and_revision_and_runs_as_a_non_root_user(image: str,
                                                                                       images: str) -> None:
    config = inspect(f"xrunner/{image}:{images}")["Config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == f"xrunner-{image}"
    assert labels["org.opencontainers.image.revision"] == git_revision()
    assert labels["org.opencontainers.image.version"]
    assert config["User"] == "10001:10001"
    assert config["Healthcheck"]["Test"][0] == "CMD"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_image_turns_healthy_with_a_read_only_root_and_cannot_write_outside_tmp(
    service: str, network: str, images: str
) -> None:
    env = {**SERVICE_ENV, "XR_NATS_URL": "nats://nats:4222",
           "XR_DATABASE_URL": f"postgresql://postgres:{PASSWORD}@postgres:5432/postgres"}
    container = f"{network}-{service}"
    run(network, service, f"xrunner/{service}:{images}", env)
    try:
        wait_for(f"{service} healthy", lambda: healthy(container))
        probe = "import os; print(os.getuid()); open('/opt/xrunner/probe', 'w')"
        done = subprocess.run(["docker", "exec", container, "python3", "-c", probe], capture_output=True, text=True)
        assert done.stdout.strip() == "10001"
        assert "Read-only file system" in done.stderr
    finally:
        docker("rm", "-f", container)
