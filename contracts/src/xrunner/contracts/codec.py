"""Encoders and decoders, built once: JSON for events and API bodies."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from xrunner.contracts.events import ALL_EVENT_TYPES, AnyEvent, Event

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_event_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


def decode_event(data: bytes) -> Event:
    """Decode any known event; raises msgspec.DecodeError/ValidationError on unknown or malformed data."""
    return _event_decoder.decode(data)


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
