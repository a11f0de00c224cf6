"""Writes docs/asyncapi.yaml: the event bus as an AsyncAPI 3 document generated from `xrunner.contracts` (every
subject, the headers each carries, every message's payload schema from the msgspec types, who sends and who reads).

Pure and stable: the same contracts give the same bytes, so tests/unit/test_asyncapi.py compares the committed file
with a fresh rendering. Run it after changing the contracts:

    .venv/bin/python web/scripts/export_asyncapi.py [--out FILE]   # FILE defaults to docs/asyncapi.yaml
"""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path
from typing import Any

import msgspec
import yaml

from xrunner.contracts import events as ev
from xrunner.contracts import messages, subjects

OUT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
REF = "#/components/schemas/{name}"
WRITER = re.compile(r"Writer: (\w+)")

# Headers, by what they are for. JetStream reads the Nats-* ones (dedupe and compare-and-set).
MSG_ID = {"type": "string", "description": "JetStream dedupe key (Nats-Msg-Id): a retried append is stored once."}
APPEND_HEADERS = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": MSG_ID,
        "Nats-Expected-Last-Subject-Sequence": {
            "type": "string", "description": "Compare-and-set: the sequence of the job's last event the writer saw."},
        "Nats-Expected-Last-Subject-Sequence-Subject": {
            "type": "string", "description": "The job's history subject the compare-and-set is scoped to."},
    },
    "required": ["Nats-Msg-Id"],
}
DEDUPED = {"type": "object", "properties": {"Nats-Msg-Id": MSG_ID}, "required": ["Nats-Msg-Id"]}
DEAD_HEADERS = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": MSG_ID,
        "Xr-Dead-Projection": {"type": "string", "description": "The projection that could not apply the event."},
        "Xr-Dead-Seq": {"type": "string", "description": "The event's sequence in XR_EVENTS."},
        "Xr-Dead-Subject": {"type": "string", "description": "The event's subject in XR_EVENTS."},
        "Xr-Dead-Error": {"type": "string", "description": "Why it could not be applied."},
    },
    "required": ["Xr-Dead-Projection", "Xr-Dead-Seq", "Xr-Dead-Subject", "Xr-Dead-Error"],
}
STDIN_HEADERS = {
    "type": "object",
    "properties": {
        subjects.STDIN_RESIZE_HEADER: {"type": "string", "description": "`<rows>x<cols>`: resize the job's tty."},
        subjects.STDIN_EOF_HEADER: {"type": "string", "enum": ["1"], "description": "Close the job's stdin."},
    },
}
PARAMS = {
    "tenant": {"description": "The tenant id."},
    "jobId": {"description": "The job id (a ULID)."},
    "workerId": {"description": "The worker id."},
    "pool": {"description": "A worker pool's name."},
    "projection": {"description": "The projection's name, dots as underscores (`gateway_jobs`)."},
}
# Who reads each channel (docs/architecture.md, "Every consumer").
READERS = {
    "jobEvents": ["gateway", "scheduler", "artifacts", "realtime", "worker"],
    "tenantEvents": ["scheduler", "artifacts", "realtime"],
    "workerEvents": ["scheduler"],
    "runQueue": ["worker"],
    "jobLogs": ["realtime", "gateway"],
    "deadLetters": ["scheduler"],
    "jobStdin": ["worker"],
}


def event_channels() -> dict[str, tuple[str, list[type[ev.Event]]]]:
    """Channel id → (address, the event types appended on it)."""
    by_kind: dict[str, list[type[ev.Event]]] = {"jobEvents": [], "tenantEvents": [], "workerEvents": []}
    for event_type in ev.ALL_EVENT_TYPES:
        if issubclass(event_type, ev.JobEvent):
            by_kind["jobEvents"].append(event_type)
        elif issubclass(event_type, ev.TenantConfigured):
            by_kind["tenantEvents"].append(event_type)
        else:
            by_kind["workerEvents"].append(event_type)
    return {
        "jobEvents": (subjects.job_events("{tenant}", "{jobId}", "{type}"), by_kind["jobEvents"]),
        "tenantEvents": (subjects.tenant_events("{tenant}", "{type}"), by_kind["tenantEvents"]),
        "workerEvents": (subjects.worker_events("{workerId}", "{type}"), by_kind["workerEvents"]),
    }


def summary(struct: type) -> str:
    return " ".join((inspect.getdoc(struct) or "").split())


def writer(struct: type) -> str:
    found = WRITER.search(inspect.getdoc(struct) or "")
    assert found is not None, f"{struct.__name__}'s docstring names no writer"
    return found.group(1)


def message(struct: type, headers: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    return {"name": name or struct.__name__, "title": struct.__name__, "summary": summary(struct),
            "contentType": "application/json", "headers": headers, "payload": {"$ref": REF.format(name=struct.__name__)}}


def parameters(address: str) -> dict[str, Any]:
    return {p: PARAMS.get(p, {}) for p in re.findall(r"{(\w+)}", address)}


def document() -> dict[str, Any]:
    others: list[tuple[str, str, type, dict[str, Any], str]] = [
        ("runQueue", subjects.run_queue("{pool}"), messages.RunJob, DEDUPED, "scheduler"),
        ("jobLogs", subjects.job_logs("{tenant}", "{jobId}"), messages.LogChunk, DEDUPED, "worker"),
    ]
    types: list[Any] = [*ev.ALL_EVENT_TYPES, *(o[2] for o in others)]
    _, schemas = msgspec.json.schema_components(types, ref_template=REF)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    component_messages: dict[str, Any] = {}
    for channel, (address, event_types) in event_channels().items():
        token_enum = sorted(ev.type_token(t) for t in event_types)
        params = parameters(address)
        params["type"] = {"description": "The event type's token.", "enum": token_enum}
        channels[channel] = {"address": address, "parameters": params, "messages": {}}
        for event_type in event_types:
            tag = ev.tag_of(event_type)
            component_messages[event_type.__name__] = message(event_type, APPEND_HEADERS, name=tag)
            channels[channel]["messages"][event_type.__name__] = {"$ref": f"#/components/messages/{event_type.__name__}"}
            operations[f"append{event_type.__name__}"] = send(writer(event_type), channel, event_type.__name__)
    for channel, address, struct, headers, sender in others:
        component_messages[struct.__name__] = message(struct, headers)
        channels[channel] = {"address": address, "parameters": parameters(address),
                             "messages": {struct.__name__: {"$ref": f"#/components/messages/{struct.__name__}"}}}
        operations[f"send{struct.__name__}"] = send(sender, channel, struct.__name__)
    channels["deadLetters"] = {
        "address": subjects.dead_letters("{projection}", "{tenant}", "{jobId}"),
        "parameters": parameters("{projection}{tenant}{jobId}"),
        "description": "An event a projection could not apply, stored as it was in XR_EVENTS (any event payload).",
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}}}
    component_messages["DeadLetter"] = {"name": "DeadLetter", "contentType": "application/json",
                                        "headers": DEAD_HEADERS, "payload": {}}
    operations["parkDeadLetter"] = send("gateway, scheduler, artifacts (their projectors)", "deadLetters", "DeadLetter")
    channels["jobStdin"] = {"address": subjects.job_stdin("{jobId}"), "parameters": parameters("{jobId}"),
                            "description": "Core NATS (no stream): an interactive job's stdin, as raw bytes.",
                            "messages": {"StdinBytes": {"$ref": "#/components/messages/StdinBytes"}}}
    component_messages["StdinBytes"] = {"name": "StdinBytes", "contentType": "application/octet-stream",
                                        "headers": STDIN_HEADERS, "payload": {"type": "string", "format": "binary"}}
    operations["sendStdin"] = send("realtime", "jobStdin", "StdinBytes")
    for channel, readers in READERS.items():
        operations[f"receive{channel[0].upper()}{channel[1:]}"] = {
            "action": "receive", "channel": {"$ref": f"#/channels/{channel}"}, "x-readers": readers,
            "description": "Readers pass over event types they do not know and count them (docs/contracts.md)."
            if channel.endswith("Events") else ""}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "xrunner event bus", "version": "1",
                 "description": "Generated from xrunner.contracts by web/scripts/export_asyncapi.py: do not edit. "
                                "Streams: XR_EVENTS (xr.evt.>), XR_RUN (xr.run.>), XR_LOGS (xr.log.>), "
                                "XR_DEAD (xr.dead.>). Evolution rules: docs/contracts.md."},
        "defaultContentType": "application/json",
        "servers": {"nats": {"host": "nats:4222", "protocol": "nats", "description": "NATS JetStream"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": component_messages, "schemas": schemas},
    }


def send(who: str, channel: str, name: str) -> dict[str, Any]:
    return {"action": "send", "channel": {"$ref": f"#/channels/{channel}"}, "x-sender": who,
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}]}


class _Dumper(yaml.SafeDumper):
    """Writes a shared value out in full at each use (no YAML anchors and aliases): plainer for readers and tools."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    return yaml.dump(document(), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.write_text(render(), encoding="utf-8")
    print(args.out)


if __name__ == "__main__":
    main()
