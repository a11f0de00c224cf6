"""The console's job, stats and admin pages' pure modules (timeline, output cap, line discipline, previews, series,
tenant form) under node's own test runner: web/console/test/pages/*.test.ts compiled by tsc (a type error fails
too), then run; every test must pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
CONSOLE = WEB / "console"
SDK_TYPES = WEB / "packages" / "sdk" / "dist" / "index.d.ts"


def _run(args: list[str], cwd: Path) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def test_the_console_pages_pure_modules_pass_their_node_tests(tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.fail("node is needed for the console's tests: install Node 20")
    if not (WEB / "node_modules" / ".bin" / "tsc").exists():
        pytest.fail("web/node_modules is missing: run `(cd web && npm ci --no-audit --no-fund)`")
    if not SDK_TYPES.exists():
        pytest.fail("the SDK is not built (its types are imported): run ./dev console")
    out = tmp_path / "build"
    _run([str(WEB / "node_modules" / ".bin" / "tsc"), "-p", "test/tsconfig.json", "--outDir", str(out)], cwd=CONSOLE)
    (out / "package.json").write_text('{"type": "module"}\n')
    tests = sorted(str(path) for path in (out / "test" / "pages").glob("*.test.js"))
    assert len(tests) == 2, tests
    report = _run(["node", "--test", "--test-reporter=tap", *tests], cwd=out)
    assert "# fail 0" in report and "# pass 12" in report, report[-3000:]
