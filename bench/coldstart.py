"""Each service's cold start: from spawning `python -m xrunner.<service>` to its `/readyz` answering 200, on a
running nats-server and Postgres whose schemas exist (what a restart during a deploy costs), measured `--rounds`
times per service. Writes JSON (`--out`).

    python bench/coldstart.py --rounds 5 --out bench/results/coldstart.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from tempfile import mkdtemp

import httpx

from xrunner.cli import embedded

SERVICES = ("gateway", "realtime", "artifacts", "scheduler", "worker")
SECRET = "coldstart-secret-of-at-least-32-bytes"


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_once(service: str, env: dict[str, str], logs: Path) -> tuple[float, float]:
    """(wall, CPU) seconds from spawn to ready; the process is stopped (SIGTERM) afterwards. The CPU time is what
    the start costs on an idle machine, near enough: the wall time on a loaded one is mostly waiting for a core."""
    port = embedded.free_port()
    env = {**env, f"XR_{service.upper()}_HTTP_PORT": str(port)}
    began = time.monotonic()
    proc = embedded.spawn([sys.executable, "-m", f"xrunner.{service}"], logs / f"{service}.log", env=env)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{service} exited {proc.returncode}; log {logs / f'{service}.log'}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return round(time.monotonic() - began, 3), round(cpu_s(proc.pid), 3)
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    finally:
        embedded.stop(proc, timeout=45, sig=signal.SIGTERM)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    base = Path(mkdtemp(prefix="xr-coldstart-"))
    nats_port, pg_port = embedded.free_port(), embedded.free_port()
    nats = embedded.start_nats(base / "nats", nats_port)
    pg = embedded.start_postgres(base / "pg", pg_port, fast=True)
    try:
        embedded.create_database("127.0.0.1", pg_port, "xrunner")
        env = {k: v for k, v in os.environ.items() if not k.startswith("XR_")}
        env |= {"XR_NATS_URL": f"nats://127.0.0.1:{nats_port}", "XR_JWT_SECRET": SECRET,
                "XR_DATABASE_URL": embedded.database_url("127.0.0.1", pg_port, "xrunner"),
                "XR_WORKER_SANDBOX": "none", "XR_WORKER_WORKSPACE_DIR": str(base / "work"),
                "XR_WORKER_ARTIFACT_DIR": str(base / "artifacts"), "XR_ARTIFACTS_ARTIFACT_DIR": str(base / "artifacts"),
                "XR_ARTIFACTS_SIGNING_KEYS": "k1:" + "k" * 32}
        first = {s: start_once(s, env, base / "logs") for s in SERVICES}  # creates the schemas and streams
        rounds = {s: [start_once(s, env, base / "logs") for _ in range(args.rounds)] for s in SERVICES}
    finally:
        embedded.stop(pg, sig=signal.SIGINT)
        embedded.stop(nats)
    result = {"first_start_wall_cpu_s": first, "restart_wall_cpu_s": rounds,
              "restart_median_wall_s": {s: statistics.median(w for w, _ in r) for s, r in rounds.items()},
              "restart_median_cpu_s": {s: statistics.median(c for _, c in r) for s, r in rounds.items()},
              "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
