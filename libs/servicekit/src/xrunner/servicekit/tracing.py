"""The W3C trace context (`traceparent`) a job's path carries: taken from the client's request or created at the
gateway, put on every message published while it is current, taken from a message by whoever handles it, and bound
into every log line (`trace_id`, `span_id`) so one job is followed across the services' logs."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

import structlog

HEADER = "traceparent"
_FORMAT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: str  # 32 lowercase hex digits, never all zeros
    span_id: str  # 16 lowercase hex digits: the operation that sent the header (the receiver's parent)
    flags: str = "01"  # sampled

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceParent:
        """The same trace, a new span: what one service does on receiving this one."""
        return TraceParent(self.trace_id, secrets.token_hex(8), self.flags)


def parse(value: str | None) -> TraceParent | None:
    """A valid `traceparent` header (version 00, or a later version read as 00), else None (the spec: restart)."""
    match = _FORMAT.match(value.strip().lower()) if value else None
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id, flags)


def new() -> TraceParent:
    return TraceParent(secrets.token_hex(16), secrets.token_hex(8))


_CURRENT: ContextVar[TraceParent | None] = ContextVar("xrunner_trace", default=None)


def current() -> TraceParent | None:
    return _CURRENT.get()


@contextlib.contextmanager
def span(parent: str | TraceParent | None) -> Iterator[TraceParent]:
    """Within: a child span of `parent` (a header or a context; a new trace when it is missing or invalid) is
    current, and every log line carries its `trace_id` and `span_id`."""
    context = parse(parent) if isinstance(parent, str) or parent is None else parent
    here = (context or new()).child()
    token = _CURRENT.set(here)
    try:
        with structlog.contextvars.bound_contextvars(trace_id=here.trace_id, span_id=here.span_id):
            yield here
    finally:
        _CURRENT.reset(token)


def headers(into: Mapping[str, str] | None = None) -> dict[str, str]:
    """`into` plus the current span's `traceparent` (when one is current): the headers of a message sent now."""
    result = dict(into or {})
    here = _CURRENT.get()
    if here is not None:
        result[HEADER] = here.header()
    return result


def of(message_headers: Mapping[str, str] | None) -> str | None:
    """The `traceparent` a received message carries, if any."""
    return (message_headers or {}).get(HEADER)
