"""Start and stop, as a user meets them: how long from a command to the first job done, and from Ctrl-C to every
process gone. Writes bench/results/startup-<what>.json.

    .venv/bin/python bench/startup.py up                   # `xrunner up` (this venv) → first job done → Ctrl-C → exit
    .venv/bin/python bench/startup.py fresh                # a clean clone + empty caches: `./dev up` → first job done
    .venv/bin/python bench/startup.py wheels DIST_DIR      # a clean venv from built wheels → `xrunner up` → first job

`fresh` copies the checkout's committed files (`git ls-files`) to a temporary folder and runs `./dev up` there with
an empty uv cache and no venv, as on a fresh machine (PyPI is downloaded again); `wheels` installs the wheels in
DIST_DIR (see `uv build --all-packages`) into a new venv outside the checkout and runs `xrunner up` from there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PORT_OFFSETS = (0, 1, 2, 3, 4, 22, 32, 41)


def free_base() -> int:
    for _ in range(200):
        base = random.randrange(20_000, 32_000)
        if all(socket.socket().connect_ex(("127.0.0.1", base + o)) != 0 for o in PORT_OFFSETS):
            return base
    raise RuntimeError("no free port range")


def first_job(env_file: Path, proc: subprocess.Popen[bytes], began: float, timeout: float) -> dict[str, float]:
    """Wait for the stack's env file, submit `true`, wait until it succeeded; the times since `began`."""
    deadline = began + timeout
    while not env_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the stack did not start (exit {proc.poll()})")
        time.sleep(0.05)
    up = time.monotonic() - began
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    with httpx.Client(base_url=env["XR_API_URL"], headers={"Authorization": f"Bearer {env['XR_TOKEN']}"}) as http:
        job = http.post("/v1/jobs", json={"workload": {"kind": "process", "argv": ["true"]}}).json()["job"]
        while (state := http.get(f"/v1/jobs/{job['id']}").json()["state"]) not in ("succeeded", "failed"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the first job is still {state}")
            time.sleep(0.05)
    return {"ready_s": round(up, 2), "first_job_done_s": round(time.monotonic() - began, 2)}


def stop(proc: subprocess.Popen[bytes]) -> float:
    """Ctrl-C (SIGINT to the group, as a terminal sends it) → the last process of the stack gone."""
    began = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(60)
    while subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).returncode == 0:
        time.sleep(0.02)
    return round(time.monotonic() - began, 2)


def run(argv: list[str], cwd: Path, data_dir: Path, env: dict[str, str], timeout: float) -> dict[str, float]:
    began = time.monotonic()
    with (cwd / "up.log").open("wb") as log:
        proc = subprocess.Popen([*argv, "--data-dir", str(data_dir), "--port", str(free_base())], cwd=cwd, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        result = first_job(data_dir / "env", proc, began, timeout)
    finally:
        result_stop = stop(proc)
    return {**result, "stop_s": result_stop}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XR_", "VIRTUAL_ENV", "UV_"))}
    return {**env, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("up", "fresh", "wheels"))
    parser.add_argument("dist", nargs="?", type=Path, help="the wheels' folder (wheels)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sandbox", default="none")
    args = parser.parse_args()
    runs = []
    for _ in range(args.reps):
        with tempfile.TemporaryDirectory(prefix=f"xr-startup-{args.what}-") as tmp:
            runs.append(one(args, Path(tmp)))
        print(json.dumps(runs[-1]), file=sys.stderr)
    out = {"what": args.what, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "load_average_at_start": os.getloadavg(), "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"startup-{args.what}.json").write_text(json.dumps(out, indent=2) + "\n")


def one(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    sandbox = ["--sandbox", args.sandbox]
    if args.what == "up":
        return run([str(Path(sys.executable).with_name("xrunner")), "up", *sandbox], tmp, tmp / "data", clean_env(),
                   120)
    if args.what == "fresh":
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        for name in filter(None, files.decode().split("\0")):
            (tmp / "repo" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp / "repo" / name)
        env = clean_env(UV_CACHE_DIR=str(tmp / "uv-cache"), npm_config_cache=str(tmp / "npm-cache"))
        return run(["./dev", "up", *sandbox], tmp / "repo", tmp / "data", env, 600)
    if args.dist is None:
        raise SystemExit("wheels: give the folder of the built wheels")
    began = time.monotonic()
    uv = Path(sys.executable).with_name("uv")
    subprocess.run([str(uv), "venv", "-q", str(tmp / "venv")], check=True, env=clean_env())
    subprocess.run([str(uv), "pip", "install", "-q", "--python", str(tmp / "venv" / "bin" / "python"),
                    "--find-links", str(args.dist), "-c", str(ROOT / "constraints.txt"), "xrunner"],
                   check=True, env=clean_env(), cwd=tmp)
    installed = round(time.monotonic() - began, 2)
    return {"install_s": installed,
            **run([str(tmp / "venv" / "bin" / "xrunner"), "up", *sandbox], tmp, tmp / "data", clean_env(), 120)}


if __name__ == "__main__":
    main()
