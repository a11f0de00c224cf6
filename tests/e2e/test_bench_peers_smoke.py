"""The peers benchmark's smoke (bench/peers/run.py --quick): every job of every workload ends, and the results come
out as JSON, a markdown table and a PNG. Timings are printed by the benchmark, never asserted here."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

RUN = Path(__file__).resolve().parents[2] / "bench" / "peers" / "run.py"
WORKLOADS = ("W1", "W3", "W4", "W5")


def systems() -> list[str]:
    """xrunner unsandboxed and the baseline; SAQ too where `./dev` installed redis-server and saq."""
    with_saq = shutil.which("redis-server") is not None and importlib.util.find_spec("saq") is not None
    return ["xrunner-none", "baseline"] + (["saq"] if with_saq else [])


def test_the_quick_run_ends_every_job_of_every_system_and_writes_well_formed_results(tmp_path: Path) -> None:
    chosen = systems()
    done = subprocess.run([sys.executable, str(RUN), "--quick", "--systems", *chosen, "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    files = {path.suffix: path for path in tmp_path.iterdir()}
    assert sorted(files) == [".json", ".md", ".png"], sorted(tmp_path.iterdir())
    results = json.loads(files[".json"].read_text())
    assert list(results["systems"]) == chosen
    for name, measured in results["systems"].items():
        assert sorted(measured) == list(WORKLOADS), name
        for key, outcome in measured.items():
            jobs = results["workloads"][key]["jobs"]
            assert jobs == 10
            assert [(r["completed"], r["succeeded"], r["lost"]) for r in outcome["reps"]] == [(jobs, jobs, 0)], \
                (name, key)
            assert outcome["median"]["makespan_s"] > 0 and outcome["median"]["cpu_ms_per_job"] >= 0
        assert measured["W1"]["median"]["p50_ms"] <= measured["W1"]["median"]["p99_ms"]
    table = files[".md"].read_text()
    for key in WORKLOADS:
        assert sum(line.startswith(f"| {key} ") for line in table.splitlines()) >= 1, key
    assert all(name in table for name in chosen)
    assert files[".png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
