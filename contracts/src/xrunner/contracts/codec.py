"""Encoders and decoders, built once: JSON for events and API bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec

from xrunner.contracts.events import ALL_EVENT_TYPES, AnyEvent, Event, tag_of

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_event_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


def decode_event(data: bytes) -> Event:
    """Decode any known event; raises msgspec.DecodeError/ValidationError on unknown or malformed data."""
    return _event_decoder.decode(data)


class _Envelope(msgspec.Struct, kw_only=True):
    """What every event carries, whatever its type: enough to pass over one this version does not know."""

    type: str
    event_id: str
    occurred_at: datetime


_envelope_decoder = msgspec.json.Decoder(_Envelope)
KNOWN_TAGS = frozenset(tag_of(t) for t in ALL_EVENT_TYPES)


def unknown_event(data: bytes) -> tuple[str, Event] | None:
    """For an event of a type this version does not know (a newer writer's): its type, and a bare `Event` that
    every fold passes over. None when `data` is a known type (valid or not) or no event at all."""
    try:
        envelope = _envelope_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if envelope.type in KNOWN_TAGS:
        return None
    return envelope.type, Event(event_id=envelope.event_id, occurred_at=envelope.occurred_at)


def decode(data: bytes, type_: type[T]) -> T:
    """Decode `data` as `type_`, caching one decoder per type."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    result: T = decoder.decode(data)
    return result


def json_schema() -> dict[str, Any]:
    """JSON Schema of every event, the job spec and the API bodies."""
    from xrunner.contracts import api, messages, spec

    types: list[Any] = [*ALL_EVENT_TYPES, spec.JobSpec, api.JobView, api.JobAccepted, api.JobLog, api.Problem,
                       api.ArtifactView]
    types += [messages.RunJob, messages.LogChunk, messages.WorkerHeartbeat]
    schemas, components = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": components, "anyOf": schemas}
