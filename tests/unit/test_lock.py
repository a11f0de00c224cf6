"""The workspace is locked: uv.lock matches every pyproject.toml, constraints.txt is the lock's runtime export, and
the suite has one version (every distribution, their pins on each other, the API document and the SDK)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")
MEMBERS = ("contracts", "libs/servicekit", "services/gateway", "services/scheduler", "services/worker",
           "services/realtime", "services/artifacts", "cli")


def _project(folder: str) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    return project


def test_the_lock_matches_every_pyproject() -> None:
    checked = subprocess.run([str(UV), "lock", "--check", "--offline"], cwd=ROOT, capture_output=True, text=True)
    assert checked.returncode == 0, f"uv.lock is stale; run `./dev lock` and commit it:\n{checked.stderr}"


def test_constraints_are_the_locks_runtime_export() -> None:
    exported = subprocess.run(
        [str(UV), "export", "--frozen", "--no-hashes", "--all-packages", "--no-emit-workspace", "--no-default-groups",
         "--no-annotate", "--no-header", "-q"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    committed = (ROOT / "constraints.txt").read_text().splitlines()
    assert [line for line in committed if not line.startswith("#")] == exported.splitlines(), \
        "constraints.txt differs from uv.lock; run `./dev lock`"


def test_one_version_for_the_suite() -> None:
    version = _project(".")["version"]
    assert {folder: _project(folder)["version"] for folder in MEMBERS} == dict.fromkeys(MEMBERS, version)
    pins = [dep for folder in (".", *MEMBERS) for dep in _project(folder)["dependencies"]  # type: ignore[attr-defined]
            if dep.startswith("xrunner-")]
    assert pins and all(dep.endswith(f"=={version}") for dep in pins), pins
    api = json.loads((ROOT / "web/schema/openapi.json").read_text())["info"]["version"]
    assert api == version
    sdk = json.loads((ROOT / "web/packages/sdk/package.json").read_text())["version"]
    assert sdk == version, "the SDK is versioned with the suite"
    kustomization = (ROOT / "infra/k8s/base/kustomization.yaml").read_text()
    tags = [line.split(":", 1)[1].strip().strip('"') for line in kustomization.splitlines() if "newTag:" in line]
    assert tags and set(tags) == {version}, "the manifests deploy another version's images"
