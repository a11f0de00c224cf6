"""The W3C `traceparent` the services carry: what is accepted, what restarts a trace, and that a span binds the
trace into log lines and message headers."""

from __future__ import annotations

import pytest
import structlog

from xrunner.servicekit import tracing

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("header", "trace_id"),
    [
        (VALID, "4bf92f3577b34da6a3ce929d0e0e4736"),
        (VALID.upper(), "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later", "4bf92f3577b34da6a3ce929d0e0e4736"),
        (None, None),
        ("", None),
        ("garbage", None),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),  # a forbidden version
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),  # an all-zero trace id
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),  # an all-zero parent id
        (VALID + "-extra", None),  # version 00 has exactly four fields
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", None),  # 31 digits
    ],
)
def test_a_traceparent_is_taken_only_when_valid(header: str | None, trace_id: str | None) -> None:
    parsed = tracing.parse(header)
    assert (parsed.trace_id if parsed else None) == trace_id


def test_a_span_keeps_the_callers_trace_with_a_span_of_its_own_and_binds_it_into_logs_and_headers() -> None:
    assert tracing.current() is None and tracing.headers({"a": "b"}) == {"a": "b"}
    with tracing.span(VALID) as here:
        assert here.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert here.span_id != "00f067aa0ba902b7"
        assert tracing.headers({"a": "b"}) == {"a": "b", "traceparent": here.header()}
        assert tracing.parse(here.header()) == here
        bound = structlog.contextvars.get_contextvars()
        assert (bound["trace_id"], bound["span_id"]) == (here.trace_id, here.span_id)
    assert tracing.current() is None
    assert "trace_id" not in structlog.contextvars.get_contextvars()


def test_without_a_valid_parent_a_span_starts_a_new_trace() -> None:
    with tracing.span("not a traceparent") as first, tracing.span(None) as second:
        assert tracing.parse(first.header()) == first
        assert first.trace_id != second.trace_id
