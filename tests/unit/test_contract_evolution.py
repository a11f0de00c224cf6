"""The evolution rules of docs/contracts.md, against samples of what a newer writer could append: additive fields
within a version decode, a new type or a new version is recognised as unknown and every fold passes over it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xrunner.contracts import codec, lifecycle
from xrunner.contracts import events as ev

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FUTURE = sorted((GOLDEN / "future").glob("*.json"))
KNOWN = {ev.tag_of(t): t for t in ev.ALL_EVENT_TYPES}


def tag(path: Path) -> str:
    return str(json.loads(path.read_bytes())["type"])


def test_there_are_samples_of_each_kind_of_change() -> None:
    assert any(tag(p) in KNOWN for p in FUTURE)
    assert any(tag(p) not in KNOWN and tag(p).rsplit(".", 1)[0] + ".v1" in KNOWN for p in FUTURE)  # a new version
    assert any(tag(p).rsplit(".", 1)[0] + ".v1" not in KNOWN for p in FUTURE)  # a new type


@pytest.mark.parametrize("path", [p for p in FUTURE if tag(p) in KNOWN], ids=lambda p: p.name)
def test_a_known_type_with_fields_added_by_a_newer_writer_decodes(path: Path) -> None:
    event = codec.decode_event(path.read_bytes())
    assert type(event) is KNOWN[tag(path)]
    assert codec.unknown_event(path.read_bytes()) is None


@pytest.mark.parametrize("path", [p for p in FUTURE if tag(p) not in KNOWN], ids=lambda p: p.name)
def test_a_new_type_or_version_is_unknown_and_every_fold_passes_over_it(path: Path) -> None:
    unknown = codec.unknown_event(path.read_bytes())
    assert unknown is not None
    name, placeholder = unknown
    assert name == tag(path) and type(placeholder) is ev.Event
    submitted = codec.decode_event((GOLDEN / "events" / "job.submitted.v1.json").read_bytes())
    view = lifecycle.replay([(1, submitted)])
    assert lifecycle.replay([(1, submitted), (2, placeholder)]) == view


@pytest.mark.parametrize("path", sorted((GOLDEN / "events").glob("*.minimal.json")), ids=lambda p: p.name)
def test_a_sample_with_only_the_required_fields_decodes_every_added_field_to_its_default(path: Path) -> None:
    event = codec.decode_event(path.read_bytes())
    assert type(event) is KNOWN[tag(path)]
    full = codec.decode_event((GOLDEN / "events" / f"{tag(path)}.json").read_bytes())
    assert event.event_id == full.event_id
