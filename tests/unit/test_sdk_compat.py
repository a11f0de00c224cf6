"""@xrunner/sdk's version follows the API's: a breaking change of web/schema/*.json against the baseline committed
for the SDK's current major (web/packages/sdk/compat/) fails here unless the SDK's major version was bumped.

After a deliberate breaking change: bump the major of web/packages/sdk/package.json (and of the OpenAPI documents'
`info.version`), then copy web/schema/*.json into web/packages/sdk/compat/ and set `major` in its baseline.json.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "web" / "schema"
SDK = ROOT / "web" / "packages" / "sdk"
BASELINE = SDK / "compat"


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_compat", ROOT / "web" / "scripts" / "api_compat.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compat = _load_checker()


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_a_breaking_change_needs_a_new_sdk_major() -> None:
    sdk_major = _major(_json(SDK / "package.json")["version"])
    baseline_major = _json(BASELINE / "baseline.json")["major"]
    found = compare = compat.compare(BASELINE, SCHEMA_DIR)
    assert sdk_major >= baseline_major, "the SDK's major is older than its compatibility baseline"
    if sdk_major == baseline_major:
        assert not found, (
            f"breaking API changes against the SDK {baseline_major}.x baseline; make them additive, or bump the "
            "SDK's major and refresh web/packages/sdk/compat/:\n" + "\n".join(compare)
        )


def test_the_sdk_major_is_the_apis() -> None:
    sdk_major = _major(_json(SDK / "package.json")["version"])
    for name in ("openapi.json", "artifacts.openapi.json"):
        assert _major(_json(SCHEMA_DIR / name)["info"]["version"]) == sdk_major, name


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return dict(_json(BASELINE / "openapi.json"))


@pytest.fixture(scope="module")
def contracts() -> dict[str, Any]:
    return dict(_json(BASELINE / "contracts.schema.json"))


def test_the_baseline_is_compatible_with_itself(openapi: dict[str, Any], contracts: dict[str, Any]) -> None:
    assert compat.breaks(openapi, openapi) == []
    assert compat.breaks(contracts, contracts) == []


def test_additive_changes_are_not_breaking(openapi: dict[str, Any]) -> None:
    new = copy.deepcopy(openapi)
    new["components"]["schemas"]["JobView"]["properties"]["brand_new"] = {"type": "string"}
    new["components"]["schemas"]["JobSpec"]["properties"]["optional_knob"] = {"type": "integer"}
    new["paths"]["/v1/brand-new"] = {"get": {"responses": {}}}
    assert compat.breaks(openapi, new) == []


def test_removals_retypes_and_new_requirements_are_breaking(openapi: dict[str, Any]) -> None:
    new = copy.deepcopy(openapi)
    del new["paths"]["/v1/jobs/{job_id}/explain"]
    del new["components"]["schemas"]["JobView"]["properties"]["state"]
    new["components"]["schemas"]["JobView"]["properties"]["attempt"] = {"type": "string"}
    new["components"]["schemas"]["JobSpec"]["required"] = [*openapi["components"]["schemas"]["JobSpec"].get(
        "required", []), "labels"]
    found = compat.breaks(openapi, new)
    assert "GET /v1/jobs/{job_id}/explain: removed" in found
    assert "JobView.state: removed" in found
    assert "JobView.attempt: type integer -> string" in found
    assert "JobSpec: newly required request fields: ['labels']" in found


def test_a_newly_required_field_in_a_response_is_not_breaking(openapi: dict[str, Any]) -> None:
    new = copy.deepcopy(openapi)
    view = new["components"]["schemas"]["StatsView"]
    view["required"] = sorted(set(view.get("required", [])) | set(view["properties"]))
    assert compat.breaks(openapi, new) == []


def test_a_removed_event_tag_is_breaking(contracts: dict[str, Any]) -> None:
    new = copy.deepcopy(contracts)
    new["$defs"]["JobStarted"]["properties"]["type"] = {"enum": ["job.started.v2"]}
    assert compat.breaks(contracts, new) == ["JobStarted.type: enum values removed: ['job.started.v1']"]
