"""Installable without the repository: the built wheels, installed into a clean virtual environment outside the
checkout (pinned by constraints.txt), give a working `xrunner` that brings the embedded stack up from another folder
and runs a job; Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import free_base

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")

pytestmark = pytest.mark.e2e


def _env() -> dict[str, str]:
    """The caller's environment without anything that points at the checkout or its venv."""
    drop = ("XR_", "VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv outside the checkout with the suite installed from wheels built from this checkout."""
    where = tmp_path_factory.mktemp("wheels")
    subprocess.run([str(UV), "build", "--all-packages", "--wheel", "-q", "-o", str(where / "dist")], cwd=ROOT,
                   check=True, env=_env())
    subprocess.run([str(UV), "venv", "-q", str(where / "venv")], cwd=where, check=True, env=_env())
    subprocess.run([str(UV), "pip", "install", "-q", "--python", str(where / "venv" / "bin" / "python"),
                    "--find-links", str(where / "dist"), "-c", str(ROOT / "constraints.txt"), "xrunner"],
                   cwd=where, check=True, env=_env())
    return where / "venv"


def test_the_wheels_alone_run_the_stack_and_a_job_from_any_folder(installed: Path, tmp_path: Path) -> None:
    python = installed / "bin" / "python"
    where = subprocess.run([str(python), "-c", "import xrunner.gateway, xrunner.cli; print(xrunner.gateway.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed)) and str(ROOT) not in where  # not the checkout's editable sources
    version = subprocess.run([str(installed / "bin" / "xrunner"), "--version"], cwd=tmp_path, capture_output=True,
                             text=True, check=True).stdout
    assert version.strip() == "xrunner 1.0.0"  # no git revision outside a checkout

    data = tmp_path / "data"
    argv = [str(installed / "bin" / "xrunner"), "up", "--sandbox", "none", "--workers", "1", "--data-dir", str(data),
            "--port", str(free_base())]
    with (tmp_path / "up.log").open("wb") as log:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        state = _run_one_job(data / "env", proc)
        assert state == "succeeded", (tmp_path / "up.log").read_text()[-3000:]
        api = dict(line.split("=", 1) for line in (data / "env").read_text().splitlines() if "=" in line)["XR_API_URL"]
        console = httpx.get(f"{api}/console/", timeout=30)  # the console's build came inside the gateway's wheel
        assert console.status_code == 200 and '<div id="root">' in console.text, console.text[:500]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)
    assert proc.returncode == 0, (tmp_path / "up.log").read_text()[-3000:]
    leftovers = subprocess.run(["pgrep", "-f", str(data)], capture_output=True, text=True).stdout.split()
    assert not leftovers, f"processes outlived xrunner up: {leftovers}"


def _run_one_job(env_file: Path, proc: subprocess.Popen[bytes], timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while not env_file.exists():
        assert proc.poll() is None, "xrunner up exited before it was ready"
        assert time.monotonic() < deadline, "xrunner up did not get ready"
        time.sleep(0.1)
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    with httpx.Client(base_url=env["XR_API_URL"], headers={"Authorization": f"Bearer {env['XR_TOKEN']}"},
                      timeout=30) as http:
        response = http.post("/v1/jobs", json={"workload": {"kind": "process", "argv": ["echo", "from wheels"]}})
        assert response.status_code in (201, 202), response.text
        job_id = response.json()["job"]["id"]
        while (state := http.get(f"/v1/jobs/{job_id}").json()["state"]) not in ("succeeded", "failed", "timed_out"):
            assert time.monotonic() < deadline, f"the job is still {state}"
            time.sleep(0.1)
        if state == "succeeded":
            assert http.get(f"/v1/jobs/{job_id}/logs").text == "from wheels\n"
    return state
