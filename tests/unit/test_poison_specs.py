"""What the contracts and the edge's limits let in: no string that Postgres cannot store or execve cannot pass,
terminal escapes as ordinary text, and no spec whose messages would not fit in a NATS message."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xrunner.contracts import codec
from xrunner.contracts.api import CancelJob
from xrunner.contracts.events import JobSubmitted
from xrunner.contracts.limits import (
    MAX_ARG_BYTES,
    MAX_ARGV_BYTES,
    MAX_ENV_BYTES,
    MAX_SPEC_BYTES,
    MAX_STDIN_BYTES,
    NATS_MAX_PAYLOAD,
    too_large,
)
from xrunner.contracts.messages import RunJob
from xrunner.contracts.spec import JobSpec

AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
NUL = "a\x00b"
ESCAPES = "\x1b[31mred\x1b[0m \x1b]0;title\x07 \x1b[2J\r\x08\x7f\x01\u202e"


def process(**workload: Any) -> dict[str, Any]:
    return {"workload": {"kind": "process", "argv": ["true"], **workload}}


def docker(**workload: Any) -> dict[str, Any]:
    return {"workload": {"kind": "docker", "image": "alpine", **workload}}


def decode(body: dict[str, Any]) -> JobSpec:
    return codec.decode(json.dumps(body).encode(), JobSpec)


NUL_IN = [
    (process(argv=["echo", NUL]), "`$.workload.argv[1]`"),
    (process(env={"A": NUL}), "`$.workload.env[...]`"),
    (process(env={NUL: "x"}), "`key` in `$.workload.env`"),
    (process(cwd=NUL), "`$.workload.cwd`"),
    (process(stdin=NUL), "`$.workload.stdin`"),
    ({**process(), "labels": {"team": NUL}}, "`$.labels[...]`"),
    ({**process(), "labels": {NUL: "x"}}, "`key` in `$.labels`"),
    ({**process(), "name": NUL}, "`$.name`"),
    ({**process(), "artifacts": {"globs": [NUL]}}, "`$.artifacts.globs[0]`"),
    (docker(image=NUL), "`$.workload.image`"),
    (docker(argv=[NUL]), "`$.workload.argv[0]`"),
    (docker(env={"A": NUL}), "`$.workload.env[...]`"),
]


@pytest.mark.parametrize(("body", "field"), NUL_IN, ids=[field for _, field in NUL_IN])
def test_a_nul_in_any_string_of_a_spec_is_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        decode(body)
    assert str(refused.value).split(" - at ", 1)[1] == field


def test_a_cancel_reason_with_a_nul_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match=re.escape("at `$.reason`")):
        codec.decode(b'{"reason": "a\\u0000b"}', CancelJob)


def test_a_lone_surrogate_or_invalid_utf8_is_not_json() -> None:
    for body in (b'{"workload": {"kind": "process", "argv": ["\\ud800"]}}',
                 b'{"workload": {"kind": "process", "argv": ["\xff\xfe"]}}'):
        with pytest.raises(msgspec.DecodeError):
            codec.decode(body, JobSpec)


def test_terminal_escapes_and_other_control_characters_are_ordinary_text() -> None:
    body = {**process(argv=["printf", ESCAPES], env={"E": ESCAPES}, stdin=ESCAPES, cwd="/tmp/" + ESCAPES),
            "labels": {"title": ESCAPES}, "name": ESCAPES}
    spec = decode(body)
    assert spec.labels["title"] == ESCAPES and spec.workload.argv[1] == ESCAPES
    assert too_large(spec) is None
    assert codec.decode(codec.encode(spec), JobSpec) == spec


def _euro(n_bytes: int) -> str:
    """A string of about `n_bytes` UTF-8 bytes in 3-byte characters: few enough characters for the schema."""
    return "€" * (n_bytes // 3)


OVER = [
    (process(argv=["echo", _euro(MAX_ARG_BYTES + 3)]), "$.workload.argv[1]", MAX_ARG_BYTES),
    (process(argv=["echo", *["x" * 60_000] * 5]), "$.workload.argv", MAX_ARGV_BYTES),
    (process(env={"BIG": _euro(MAX_ARG_BYTES)}), "$.workload.env.BIG", MAX_ARG_BYTES),
    (process(env={f"V{i}": "x" * 60_000 for i in range(5)}), "$.workload.env", MAX_ENV_BYTES),
    (process(stdin="x" * (MAX_STDIN_BYTES + 1)), "$.workload.stdin", MAX_STDIN_BYTES),
    (docker(argv=["x" * 60_000] * 5), "$.workload.argv", MAX_ARGV_BYTES),
    # each part under its own limit, together over the spec's
    (process(argv=["x" * 60_000] * 3, env={"V": "x" * 60_000, "W": "x" * 60_000}, stdin="x" * 250_000), "$",
     MAX_SPEC_BYTES),
    # 1 byte each in UTF-8 but 6 once JSON-escaped: the encoded spec is what travels
    (process(stdin="\x01" * 100_000), "$", MAX_SPEC_BYTES),
]


@pytest.mark.parametrize(("body", "field", "limit"), OVER, ids=[f"{field}-{i}" for i, (_, field, _) in enumerate(OVER)])
def test_a_spec_over_a_byte_limit_is_named_by_its_field(body: dict[str, Any], field: str, limit: int) -> None:
    found = too_large(decode(body))
    assert found is not None
    assert (found.field, found.limit) == (field, limit)
    assert found.size > limit and field in found.detail()


def _largest_accepted_spec() -> JobSpec:
    """A spec whose every part is at its limit, trimmed until the whole is at most MAX_SPEC_BYTES."""
    stdin = "x" * MAX_STDIN_BYTES
    argv = ["x" * (MAX_ARGV_BYTES // 4)] * 4
    spec = decode(process(argv=argv, stdin=stdin))
    excess = len(codec.encode(spec)) - MAX_SPEC_BYTES
    spec = decode(process(argv=[*argv[:3], argv[3][: len(argv[3]) - excess]], stdin=stdin))
    assert len(codec.encode(spec)) == MAX_SPEC_BYTES and too_large(spec) is None
    return spec


def test_the_largest_accepted_spec_fits_in_a_nats_message_as_job_submitted_and_as_run_job() -> None:
    spec = _largest_accepted_spec()
    ident, long = "0" * 26, "x" * 1024  # ids are 26-character ULIDs; a JWT subject of 1 KiB is generous
    submitted = JobSubmitted(event_id=ident, occurred_at=AT, tenant="t" * 63, job_id=ident, spec=spec,
                             submitted_by=long, idempotency_key="k" * 255, rerun_of=ident)
    run = RunJob(tenant="t" * 63, job_id=ident, attempt=100, spec=spec, fence_seq=2**62, dispatched_at=AT,
                 retries_used=99)
    headers = 1024  # Nats-Msg-Id and Nats-Expected-Last-Subject-Sequence(-Subject), and the subject itself
    assert len(codec.encode(submitted)) + headers <= NATS_MAX_PAYLOAD
    assert len(codec.encode(run)) + headers <= NATS_MAX_PAYLOAD


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(["workload", "kind", "argv", "env", "stdin", "cwd", "labels", "name", "image",
                               "artifacts", "globs", "resources", "retry", "priority", "timeout_s"])


@st.composite
def mutated_specs(draw: st.DrawFn) -> bytes:
    """A valid spec with one part replaced by an arbitrary JSON value or a string that may hold NUL or escapes."""
    body: dict[str, Any] = process(argv=["echo", "hi"], env={"A": "b"})
    target = draw(st.sampled_from([body, body["workload"]]))
    value = draw(json_values | st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
                 | st.lists(st.text(max_size=5), max_size=3))
    target[draw(field_names)] = value
    return json.dumps(body).encode()


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200), mutated_specs()))
def test_the_spec_decoder_answers_every_body_with_a_spec_or_a_decode_error(body: bytes) -> None:
    """Whatever is accepted can be encoded again (so stored and published) and holds no NUL."""
    try:
        spec = codec.decode(body, JobSpec)
    except msgspec.DecodeError:  # ValidationError is a DecodeError: both are a 400
        return
    too_large(spec)
    encoded = codec.encode(spec)
    assert b"\\u0000" not in encoded
    assert codec.decode(encoded, JobSpec) == spec
