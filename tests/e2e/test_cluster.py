"""`xrunner up --cluster 3` survives the loss of a NATS node under load: bench/cluster.py submits 300 jobs while the
node that leads the log is SIGKILLed (and restarted by `xrunner up`). Every job ends once, nothing is lost or run
twice, and no client sees a submit error. The latencies it measures are printed and kept by the bench, not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

RUN = Path(__file__).resolve().parents[2] / "bench" / "cluster.py"


def test_killing_the_logs_leader_node_under_300_jobs_loses_none_runs_none_twice_and_fails_no_submit(
    tmp_path: Path,
) -> None:
    out = tmp_path / "loss.json"
    done = subprocess.run([sys.executable, str(RUN), "--jobs", "300", "--data-dir", str(tmp_path / ".xrunner"),
                           "--out", str(out)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    print(json.dumps(result, indent=2))
    assert result["killed_node"].startswith("xr-n")
    assert result["submit_errors"] == 0, result["examples"]
    assert (result["lost"], result["duplicated"]) == ([], []), result["examples"]
    assert result["states"] == {"succeeded": 300}
