"""Measures the images infra/images/build.sh built: each one's size, and each service's cold start (docker start of a
created container → its /readyz answers 200) against nats, postgres and s3 containers already up; writes
bench/results/images.json.

    .venv/bin/python bench/images.py [--tag latest] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

SERVICES = {"gateway": 8700, "scheduler": 8703, "worker": 8704, "realtime": 8701, "artifacts": 8702}
IMAGES = (*SERVICES, "nats", "postgres", "s3")
ENV = {"XR_JWT_SECRET": "bench", "XR_NATS_URL": "nats://nats:4222",
       "XR_DATABASE_URL": "postgresql://postgres:bench@postgres:5432/postgres", "XR_WORKER_SANDBOX": "none",
       "XR_WORKER_DOCKER": "off"}


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait(check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("not ready in time")
        time.sleep(0.01)


def create(net: str, name: str, image: str, env: dict[str, str], publish: int | None = None) -> str:
    args = ["create", "--name", f"{net}-{name}", "--network", net, "--network-alias", name, "--read-only",
            "--tmpfs", "/tmp:exec,mode=1777"]
    args += [f"-e{k}={v}" for k, v in env.items()]
    if publish:
        args += ["-p", f"127.0.0.1::{publish}"]
    return docker(*args, image)


def cold_start(net: str, service: str, tag: str) -> float:
    """Seconds from `docker start` to the first 200 from /readyz (the container created beforehand)."""
    container = create(net, service, f"xrunner/{service}:{tag}", ENV, SERVICES[service])
    try:
        started = time.monotonic()
        docker("start", container)
        port = int(docker("port", container, str(SERVICES[service])).splitlines()[0].rsplit(":", 1)[1])
        wait(lambda: ready(port))
        return time.monotonic() - started
    finally:
        docker("rm", "-f", container)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tag", default="latest")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results/images.json"))
    opts = parser.parse_args()
    sizes = {i: int(docker("image", "inspect", "-f", "{{.Size}}", f"xrunner/{i}:{opts.tag}")) for i in IMAGES}
    net = f"xr-bench-images-{int(time.time())}"
    docker("network", "create", net)
    try:
        for name, env in (("nats", {}), ("postgres", {"XR_POSTGRES_PASSWORD": "bench"}), ("s3", {})):
            docker("start", create(net, name, f"xrunner/{name}:{opts.tag}", env))
        wait(lambda: all(docker("inspect", "-f", "{{.State.Health.Status}}", f"{net}-{n}") == "healthy"
                         for n in ("nats", "postgres", "s3")), timeout=120)
        starts = {s: [round(cold_start(net, s, opts.tag), 3) for _ in range(opts.rounds)] for s in SERVICES}
    finally:
        for name in ("nats", "postgres", "s3"):
            subprocess.run(["docker", "rm", "-f", "-v", f"{net}-{name}"], capture_output=True)
        docker("network", "rm", net)
    result = {"sizes_mb": {i: round(b / 1e6, 1) for i, b in sizes.items()},
              "cold_start_s": {s: {"median": statistics.median(v), "runs": v} for s, v in starts.items()},
              "load_avg_1m": float(Path("/proc/loadavg").read_text().split()[0])}
    Path(opts.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
