"""docs/asyncapi.yaml is what the contracts generate today (web/scripts/export_asyncapi.py), and it is a coherent
AsyncAPI 3 document: every reference resolves, every event type has a message on its channel with the headers an
append carries, and every channel's address parameters are declared."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from xrunner.contracts import events as ev

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.yaml"


def exporter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_asyncapi", ROOT / "web" / "scripts" / "export_asyncapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    return loaded


def test_the_committed_document_is_what_the_contracts_generate() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == exporter().render(), \
        "run .venv/bin/python web/scripts/export_asyncapi.py and commit docs/asyncapi.yaml"


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    found = refs(document)
    assert len(found) > 50
    for ref in found:
        assert resolve(document, ref) is not None, ref


@pytest.mark.parametrize("event_type", ev.ALL_EVENT_TYPES, ids=ev.tag_of)
def test_every_event_type_is_a_message_with_its_payload_schema_and_append_headers(
    document: dict[str, Any], event_type: type[ev.Event]
) -> None:
    name = event_type.__name__
    message = document["components"]["messages"][name]
    assert message["name"] == ev.tag_of(event_type)
    payload = resolve(document, message["payload"]["$ref"])
    assert payload["properties"]["type"]["enum"] == [ev.tag_of(event_type)]
    assert "Nats-Msg-Id" in message["headers"]["required"]
    senders = [op for op in document["operations"].values()
               if op["action"] == "send" and any(m["$ref"].endswith(f"/messages/{name}") for m in op["messages"])]
    assert len(senders) == 1 and senders[0]["x-sender"] in {"gateway", "scheduler", "worker", "realtime", "artifacts"}


def test_every_channel_declares_the_parameters_of_its_address(document: dict[str, Any]) -> None:
    for channel in document["channels"].values():
        assert set(re.findall(r"{(\w+)}", channel["address"])) == set(channel.get("parameters", {}))
        assert channel["address"].startswith("xr.")
