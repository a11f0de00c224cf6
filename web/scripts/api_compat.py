"""Finds the breaking changes between two versions of the API's documents (the OpenAPI documents and the contracts'
JSON Schema), the rule behind @xrunner/sdk's major version: a breaking change needs a new major.

Breaking: a removed path or method; a removed or newly required parameter; a removed schema, property or enum
value (an event tag is an enum value of its `type`); a property whose type changed; a newly required property of a
schema a request body uses. Additive changes (new paths, optional fields, new schemas, new enum values) are not.

    .venv/bin/python web/scripts/api_compat.py BASELINE_DIR CURRENT_DIR   # prints the breaks, exits 1 if any
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Schema = dict[str, Any]
DOCUMENTS = ("openapi.json", "artifacts.openapi.json", "contracts.schema.json")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _defs(document: Schema) -> dict[str, Schema]:
    """The named schemas of an OpenAPI document (`components.schemas`) or a JSON Schema (`$defs`)."""
    return dict(document.get("components", {}).get("schemas", {}) or document.get("$defs", {}))


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _refs(node: Any) -> Iterator[str]:
    """Every schema name `node` refers to, at any depth."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield _ref_name(node["$ref"])
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def request_schemas(document: Schema) -> set[str]:
    """The schemas a request body uses, directly or through other schemas."""
    defs = _defs(document)
    todo = [name for item in document.get("paths", {}).values() for method in METHODS if method in item
            for name in _refs(item[method].get("requestBody", {}))]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_refs(defs.get(name, {})))
    return seen


def signature(schema: Any) -> str:
    """A schema's type as a comparable string: its ref, type (with items), or its alternatives; enums and
    constants count as their base type (their values are compared on their own)."""
    if not isinstance(schema, dict):
        return "any"
    if "$ref" in schema:
        return _ref_name(schema["$ref"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return "|".join(sorted({signature(option) for option in schema[key]}))
    kind = schema.get("type")
    if kind == "array":
        return f"array<{signature(schema.get('items'))}>"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map<{signature(schema['additionalProperties'])}>"
    if isinstance(kind, list):
        return "|".join(sorted(kind))
    if kind is None and "enum" in schema:
        return "enum"
    return str(kind or "any")


def _enum(schema: Any) -> set[Any]:
    found: set[Any] = set()
    if isinstance(schema, dict):
        found.update(value for value in schema.get("enum", []) if isinstance(value, str | int | float | bool))
        for key in ("oneOf", "anyOf"):
            for option in schema.get(key, []):
                found |= _enum(option)
    return found


def schema_breaks(name: str, old: Schema, new: Schema, request: bool) -> Iterator[str]:
    removed = sorted(_enum(old) - _enum(new))
    if removed:
        yield f"{name}: enum values removed: {removed}"
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for prop, old_schema in sorted(old_props.items()):
        if prop not in new_props:
            yield f"{name}.{prop}: removed"
            continue
        if signature(old_schema) != signature(new_props[prop]):
            yield f"{name}.{prop}: type {signature(old_schema)} -> {signature(new_props[prop])}"
        gone = sorted(_enum(old_schema) - _enum(new_props[prop]))
        if gone:
            yield f"{name}.{prop}: enum values removed: {gone}"
    if request:
        added = sorted(set(new.get("required", [])) - set(old.get("required", [])))
        if added:
            yield f"{name}: newly required request fields: {added}"


def _parameters(operation: Schema) -> dict[tuple[str, str], Schema]:
    return {(p["in"], p["name"].lower() if p["in"] == "header" else p["name"]): p
            for p in operation.get("parameters", [])}


def operation_breaks(where: str, old: Schema, new: Schema) -> Iterator[str]:
    old_params, new_params = _parameters(old), _parameters(new)
    for key, param in sorted(old_params.items()):
        if key not in new_params:
            yield f"{where}: parameter {key[1]} ({key[0]}) removed"
        elif signature(param.get("schema")) != signature(new_params[key].get("schema")):
            yield f"{where}: parameter {key[1]} type changed"
    for key, param in sorted(new_params.items()):
        if param.get("required") and not old_params.get(key, {}).get("required"):
            yield f"{where}: parameter {key[1]} ({key[0]}) newly required"
    if not old.get("requestBody", {}).get("required") and new.get("requestBody", {}).get("required"):
        yield f"{where}: request body newly required"


def breaks(old: Schema, new: Schema, requests: set[str] | None = None) -> list[str]:
    """The breaking changes from `old` to `new` (both OpenAPI documents, or both JSON Schemas)."""
    found: list[str] = []
    requests = request_schemas(new) | request_schemas(old) if requests is None else requests
    for path, item in sorted(old.get("paths", {}).items()):
        for method in METHODS:
            if method not in item:
                continue
            where = f"{method.upper()} {path}"
            current = new.get("paths", {}).get(path, {}).get(method)
            if current is None:
                found.append(f"{where}: removed")
            else:
                found.extend(operation_breaks(where, item[method], current))
    new_defs = _defs(new)
    for name, schema in sorted(_defs(old).items()):
        if name not in new_defs:
            found.append(f"{name}: schema removed")
        else:
            found.extend(schema_breaks(name, schema, new_defs[name], name in requests))
    return found


def compare(baseline: Path, current: Path) -> list[str]:
    """The breaking changes between the documents of two folders (those the baseline has)."""
    documents = {name: json.loads((baseline / name).read_text(encoding="utf-8"))
                 for name in DOCUMENTS if (baseline / name).exists()}
    fresh = {name: json.loads((current / name).read_text(encoding="utf-8")) for name in documents}
    requests: set[str] = set()
    for name in ("openapi.json", "artifacts.openapi.json"):
        if name in documents:
            requests |= request_schemas(documents[name]) | request_schemas(fresh[name])
    return [f"{name}: {item}" for name in documents for item in breaks(documents[name], fresh[name], requests)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", type=Path)
    parser.add_argument("current", type=Path)
    args = parser.parse_args()
    found = compare(args.baseline, args.current)
    for item in found:
        print(item)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
