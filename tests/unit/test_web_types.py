"""The committed TypeScript types in web/packages/api-types are what the Python contracts generate today.

The export (web/scripts/export_schemas.py) and both generators (via web/scripts/generate.sh) run into a temporary
folder and every output must equal the committed file, so a contract or route change that was not followed by
`web/scripts/generate.sh` fails here. The generators come from web/node_modules: CI installs them with
`(cd web && npm ci --no-audit --no-fund)`; when they are missing these tests fail rather than skip.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SCHEMA_DIR = WEB / "schema"
SRC_DIR = WEB / "packages" / "api-types" / "src"
GENERATED = {
    SCHEMA_DIR: ("openapi.json", "artifacts.openapi.json", "contracts.schema.json"),
    SRC_DIR: ("openapi.ts", "artifacts.ts", "contracts.ts"),
}
TOOLS = ("openapi-typescript", "json2ts", "tsc")
REGENERATE = "run web/scripts/generate.sh and commit the result"
INSTALL = "run `(cd web && npm ci --no-audit --no-fund)` (.ci/run does this before the tests)"


def _require_node_modules() -> None:
    if shutil.which("node") is None or shutil.which("npx") is None:
        pytest.fail(f"node and npx are needed to check the generated TypeScript types; install Node 20, then {INSTALL}")
    missing = [tool for tool in TOOLS if not (WEB / "node_modules" / ".bin" / tool).exists()]
    if missing:
        pytest.fail(f"web/node_modules lacks {', '.join(missing)}; {INSTALL}")


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    """Runs the export and both generators into a temporary folder; maps each committed folder to its fresh twin."""
    _require_node_modules()
    out = tmp_path_factory.mktemp("web-types")
    schema, src = out / "schema", out / "src"
    env = {**os.environ, "PYTHON": sys.executable}
    _run(["bash", str(WEB / "scripts" / "generate.sh"), str(schema), str(src)], cwd=ROOT, env=env)
    return {SCHEMA_DIR: schema, SRC_DIR: src}


def _diff(committed: Path, fresh: Path, limit: int = 40) -> str:
    old = committed.read_text(encoding="utf-8").splitlines(keepends=True) if committed.exists() else []
    new = fresh.read_text(encoding="utf-8").splitlines(keepends=True)
    lines = list(difflib.unified_diff(old, new, f"committed/{committed.name}", f"generated/{fresh.name}"))
    more = f"... ({len(lines) - limit} more diff lines)\n" if len(lines) > limit else ""
    return "".join(lines[:limit]) + more


def test_generated_files_are_up_to_date(generated: dict[Path, Path]) -> None:
    stale = []
    for committed_dir, names in GENERATED.items():
        for name in names:
            committed, fresh = committed_dir / name, generated[committed_dir] / name
            if not committed.exists() or committed.read_bytes() != fresh.read_bytes():
                stale.append(f"{committed.relative_to(ROOT)}:\n{_diff(committed, fresh)}")
    assert not stale, f"generated web types are stale; {REGENERATE}.\n\n" + "\n".join(stale)


def test_generated_package_type_checks() -> None:
    _require_node_modules()
    _run([str(WEB / "node_modules" / ".bin" / "tsc"), "--noEmit", "-p", "packages/api-types"], cwd=WEB)


def test_generators_are_pinned_to_exact_versions() -> None:
    dev = json.loads((WEB / "package.json").read_text(encoding="utf-8"))["devDependencies"]
    loose = {name: version for name, version in dev.items() if not re.fullmatch(r"\d+\.\d+\.\d+", version)}
    assert not loose, f"pin web/package.json devDependencies to exact versions (the output depends on them): {loose}"
    lock = json.loads((WEB / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    for name, version in dev.items():
        assert lock.get(f"node_modules/{name}", {}).get("version") == version, (
            f"web/package-lock.json does not match web/package.json for {name}; run `(cd web && npm install)`"
        )
