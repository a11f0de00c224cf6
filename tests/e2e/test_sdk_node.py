"""@xrunner/sdk against the embedded stack: builds the SDK and its tests, then runs them with node's own test runner
(web/packages/sdk/test/) with the stack's URLs and tokens for the tenants they use; every one must pass."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SDK = WEB / "packages" / "sdk"
TENANTS = ("sdk-events", "sdk-resume", "sdk-logs", "sdk-attach", "sdk-errors", "sdk-limited", "sdk-admin", "sdk-pages",
           "sdk-live", "sdk-rest")


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> None:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}")


@pytest.fixture(scope="module")
def built() -> Path:
    """The SDK and its tests compiled (web/node_modules comes from `npm ci` in web/, as .ci/run does)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the SDK's tests: install Node 20")
    if not (WEB / "node_modules" / ".bin" / "tsc").exists():
        pytest.fail("web/node_modules is missing: run `(cd web && npm ci --no-audit --no-fund)`")
    _run(["npm", "run", "--silent", "build"], cwd=SDK)
    _run(["npm", "run", "--silent", "build:test"], cwd=SDK)
    return SDK / "build" / "test"


def test_the_sdk_passes_its_node_tests_against_the_stack(stack: Stack, built: Path) -> None:
    tokens = {tenant: stack.token(tenant) for tenant in TENANTS}
    env = {
        **os.environ,
        "XR_GATEWAY_URL": stack.api,
        "XR_REALTIME_URL": f"http://127.0.0.1:{stack.port + 1}",
        "XR_ARTIFACTS_URL": f"http://127.0.0.1:{stack.port + 2}",
        "XR_TOKENS": json.dumps(tokens),
    }
    tests = sorted(str(path) for path in built.glob("*.test.js"))
    assert tests, f"no compiled tests in {built}"
    _run(["node", "--test", "--test-concurrency=1", "--test-reporter=spec", *tests], cwd=SDK, env=env, timeout=600)
