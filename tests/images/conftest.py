"""The images, built once per test session by infra/images/build.sh (reusing the machine's layer cache): by `./dev test`
in the background while the setup and the other tests run, or here when nothing started that build."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from dockerkit import REPO, TAG, wait_for

BUILD_TIMEOUT_S = 1800


@pytest.fixture(scope="session")
def images() -> str:
    """Every image built from this checkout and tagged `test`; returns the tag."""
    background = os.environ.get("XR_TEST_IMAGE_BUILD")  # the folder of `./dev test`'s build (./dev: start_image_build)
    if background:
        return _built_in_background(Path(background))
    env = {**os.environ, "XR_IMAGE_TAG": TAG}
    done = subprocess.run([str(REPO / "infra/images/build.sh")], env=env, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)
    assert done.returncode == 0, f"infra/images/build.sh failed:\n{done.stderr[-4000:]}"
    return TAG


def _built_in_background(folder: Path) -> str:
    """Waits for the background build's exit status; fails with its log's tail unless it is 0."""
    status, log = folder / "status", folder / "build.log"
    wait_for(f"the background image build (log: {log})", status.exists, timeout=BUILD_TIMEOUT_S, every=1)
    code = status.read_text().strip()
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
    assert code == "0", f"infra/images/build.sh (started by ./dev test) exited {code}; {log} ends:\n{tail}"
    return TAG
