"""The docker commands, names and waits that the image and compose tests share."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "scheduler", "worker", "realtime", "artifacts")
INFRA = ("nats", "postgres", "s3")
TAG = "test"
# Whichever test comes first builds every image in its setup (the session's `images` fixture), or waits for the build
# `./dev test` started in the background: on a machine with an empty layer cache that is ~9 minutes, which
# pytest-timeout counts against that test.
BUILDS_IMAGES = pytest.mark.timeout(1800)


def docker(*args: str, timeout: float = 120) -> str:
    """Run `docker ARGS`; its stdout, or the failure with its stderr."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def inspect(name: str) -> dict[str, Any]:
    """`docker inspect` of one image or container."""
    found: list[dict[str, Any]] = json.loads(docker("inspect", name))
    return found[0]


def wait_for(what: str, check: Callable[[], bool], timeout: float = 90, every: float = 0.25) -> None:
    """Poll `check` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
