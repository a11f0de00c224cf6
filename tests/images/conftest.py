"""The images, built once per test session by infra/images/build.sh (reusing the machine's layer cache)."""

from __future__ import annotations

import os
import subprocess

import pytest
from dockerkit import REPO, TAG


@pytest.fixture(scope="session")
def images() -> str:
    """Every image built from this checkout and tagged `test`; returns the tag."""
    env = {**os.environ, "XR_IMAGE_TAG": TAG}
    done = subprocess.run([str(REPO / "infra/images/build.sh")], env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, f"infra/images/build.sh failed:\n{done.stderr[-4000:]}"
    return TAG
